//! What `predict` takes: values that carry their shape, so that a wrong
//! feature count is an error instead of a different number of rows.

use kiln_data::{Array, Dataset};

/// Samples with their shape `[rows, sample…]`: an [`Array`], a
/// [`Dataset`]'s features, or a flat slice beside its shape,
/// `(&values[..], &shape[..])`.
pub trait Samples {
    /// The values, row-major, and their shape `[rows, sample…]`.
    fn values_and_shape(&self) -> (&[f32], Vec<usize>);
}

impl Samples for Array {
    fn values_and_shape(&self) -> (&[f32], Vec<usize>) {
        (self.data(), self.shape().to_vec())
    }
}

impl Samples for Dataset {
    fn values_and_shape(&self) -> (&[f32], Vec<usize>) {
        let mut shape = vec![self.len()];
        shape.extend(self.sample_shape());
        (self.features(), shape)
    }
}

impl Samples for (&[f32], &[usize]) {
    fn values_and_shape(&self) -> (&[f32], Vec<usize>) {
        (self.0, self.1.to_vec())
    }
}
