//! Row-major matrix helpers shared by the recurrent layers' weight layouts:
//! a transpose, and gate blocks put in another framework's order.

use crate::error::{ModelError, Result};

/// Fails unless `what` of a `layer`'s weights has `want` values.
pub(crate) fn check(layer: &str, what: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(ModelError::Weights(format!(
            "{layer} weights: {what} has {got} values; expected {want}"
        )));
    }
    Ok(())
}

/// `[rows, cols]` row-major transposed.
pub(crate) fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| m[r * cols + c]))
        .collect()
}

/// The rows of a `[G·u, width]` matrix with its gate blocks put in another
/// order: block `k` of the result is block `order[k]` of `m`.
pub(crate) fn reorder_blocks(m: &[f32], units: usize, width: usize, order: &[usize]) -> Vec<f32> {
    order
        .iter()
        .flat_map(|&k| {
            m[k * units * width..(k + 1) * units * width]
                .iter()
                .copied()
        })
        .collect()
}

/// `order`'s inverse permutation.
pub(crate) fn inverse(order: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; order.len()];
    for (k, &o) in order.iter().enumerate() {
        inv[o] = k;
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_move_whole_and_back() {
        // Three blocks of one unit, two columns each: rows a, b, c.
        let m = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let order = [1, 0, 2];
        let moved = reorder_blocks(&m, 1, 2, &order);
        assert_eq!(moved, [3.0, 4.0, 1.0, 2.0, 5.0, 6.0]);
        assert_eq!(reorder_blocks(&moved, 1, 2, &inverse(&order)), m);
        assert_eq!(transpose(&m, 3, 2), [1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
    }
}
