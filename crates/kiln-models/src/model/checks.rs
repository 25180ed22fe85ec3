//! What a batch or a data set must be before anything runs on it.

use kiln_data::Dataset;

use super::Model;
use crate::error::{ModelError, Result};
use crate::module::Module;

impl<M: Module> Model<M> {
    /// The number of samples in `x`, checking `x` and `y` sizes and targets.
    pub(super) fn check_batch(&self, x: &[f32], y: Option<&[f32]>) -> Result<usize> {
        let f: usize = self.input_shape.iter().product();
        if x.is_empty() || !x.len().is_multiple_of(f) {
            return Err(ModelError::Shape(format!(
                "a batch of {} input values is not a whole number of samples of shape {:?}",
                x.len(),
                self.input_shape
            )));
        }
        if let Some(bad) = x.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::Values(format!(
                "input value {bad} of the batch is {}; inputs must be finite",
                x[bad]
            )));
        }
        let batch = x.len() / f;
        if let Some(y) = y {
            let t = self.training.as_ref().expect("checked by callers");
            let out = self.output_shape()?;
            let per: usize = t.loss.target_shape(&out).iter().product();
            if y.len() != batch * per {
                return Err(ModelError::Shape(format!(
                    "{} target values for {batch} samples; the loss takes {per} per sample \
                     (outputs {out:?})",
                    y.len()
                )));
            }
            let classes = out.last().copied().unwrap_or(1);
            t.loss.validate_targets(y, classes)?;
        }
        Ok(batch)
    }

    /// The number of rows of `shape` (`[rows, sample…]`), which must hold
    /// `values` in samples of exactly the model's input shape.
    pub(super) fn check_samples(&self, values: &[f32], shape: &[usize]) -> Result<usize> {
        let Some((&rows, sample)) = shape.split_first() else {
            return Err(ModelError::Shape(format!(
                "predict takes samples of shape [rows, {}], got a 0-d value",
                dims(&self.input_shape)
            )));
        };
        if sample != self.input_shape.as_slice() {
            return Err(ModelError::Shape(format!(
                "predict got {rows} samples of shape {sample:?}; the model's input shape is {:?}, so it takes [rows, {}]",
                self.input_shape,
                dims(&self.input_shape)
            )));
        }
        if rows == 0 || values.len() != shape.iter().product::<usize>() {
            return Err(ModelError::Shape(format!(
                "predict got {} values for shape {shape:?}; expected at least one row and {} values",
                values.len(),
                shape.iter().product::<usize>()
            )));
        }
        Ok(rows)
    }

    /// Every feature of `data` is finite and every target one the loss can
    /// take, checked before any step: the error names the data set's row,
    /// not a position in a batch.
    pub(crate) fn check_rows(&self, data: &Dataset) -> Result<()> {
        let f = data.n_features().max(1);
        if let Some(i) = data.features().iter().position(|v| !v.is_finite()) {
            return Err(ModelError::Values(format!(
                "row {} of the data has feature {} = {}; inputs must be finite",
                i / f,
                i % f,
                data.features()[i]
            )));
        }
        let t = self.training.as_ref().expect("checked by callers");
        let out = self.output_shape()?;
        let per: usize = t.loss.target_shape(&out).iter().product();
        if data.n_targets() != per {
            return Err(ModelError::Shape(format!(
                "the data has {} target values per row; {:?} takes {per} for outputs {out:?}",
                data.n_targets(),
                t.loss
            )));
        }
        let classes = out.last().copied().unwrap_or(1);
        match t.loss.first_bad_target(data.targets(), classes) {
            Some((i, why)) => Err(ModelError::Values(format!(
                "{:?}: row {} of the data has target {}: it {why}",
                t.loss,
                i / per.max(1),
                data.targets()[i]
            ))),
            None => Ok(()),
        }
    }

    /// The data's samples have the shape (or at least the size) the model takes.
    pub(crate) fn check_data(&self, data: &Dataset) -> Result<()> {
        let want: usize = self.input_shape.iter().product();
        if data.n_features() != want {
            return Err(ModelError::Shape(format!(
                "the data's samples have shape {:?} ({} values), the model takes {:?} ({want})",
                data.sample_shape(),
                data.n_features(),
                self.input_shape
            )));
        }
        Ok(())
    }
}

/// `30` or `1, 28, 28`: a shape's dimensions, for messages.
fn dims(shape: &[usize]) -> String {
    shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
