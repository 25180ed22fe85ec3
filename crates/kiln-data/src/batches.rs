//! The order rows are visited in, batch by batch.

use crate::rng::SplitMix64;

/// Row indices of `len` rows cut into batches of `batch_size`; the last batch
/// keeps the remainder (never dropped). With `shuffle = Some(seed)` the rows
/// are permuted first, differently for every `epoch`.
///
/// ```
/// let batches = kiln_data::batch_order(10, 4, None, 0);
/// assert_eq!(batches, vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]);
/// ```
pub fn batch_order(
    len: usize,
    batch_size: usize,
    shuffle: Option<u64>,
    epoch: u64,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..len).collect();
    if let Some(seed) = shuffle {
        SplitMix64::new(seed ^ epoch.wrapping_mul(0xd1b5_4a32_d192_ed03)).shuffle(&mut order);
    }
    order
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}
