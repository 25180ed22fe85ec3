//! [`Array`]: f32 values with a shape, on the host: what a model's
//! `predict` returns, and what loaders build datasets from.

use crate::error::{DataError, Result};

/// Row-major f32 values of a given shape.
///
/// ```
/// let a = kiln_data::Array::new(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
/// assert_eq!(a.shape(), &[2, 3]);
/// assert_eq!(a.row(1), &[4.0, 5.0, 6.0]);
/// assert_eq!(a.get(&[1, 2]), Some(6.0));
/// # Ok::<(), kiln_data::DataError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl Array {
    /// Checks that `data` fills `shape` exactly.
    pub fn new(data: Vec<f32>, shape: &[usize]) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(DataError::Shape(format!(
                "{} values cannot fill shape {shape:?} ({n} elements)",
                data.len()
            )));
        }
        Ok(Self {
            shape: shape.to_vec(),
            data,
        })
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn data(&self) -> &[f32] {
        &self.data
    }

    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The elements of index `i` along the first axis (a sample's outputs).
    /// Panics when `i` is out of range, like slice indexing.
    pub fn row(&self, i: usize) -> &[f32] {
        let per: usize = self.shape.iter().skip(1).product();
        &self.data[i * per..(i + 1) * per]
    }

    /// The element at `index`, or `None` when it is outside the shape.
    pub fn get(&self, index: &[usize]) -> Option<f32> {
        if index.len() != self.shape.len() || index.iter().zip(&self.shape).any(|(i, s)| i >= s) {
            return None;
        }
        let at = index
            .iter()
            .zip(&self.shape)
            .fold(0, |acc, (&i, &s)| acc * s + i);
        self.data.get(at).copied()
    }

    /// The index of the largest element of each row (the predicted class).
    pub fn argmax_rows(&self) -> Vec<usize> {
        let rows = self.shape.first().copied().unwrap_or(1);
        (0..rows)
            .map(|i| {
                let r = self.row(i);
                (0..r.len())
                    .max_by(|&a, &b| r[a].total_cmp(&r[b]).then(b.cmp(&a)))
                    .unwrap_or(0)
            })
            .collect()
    }
}
