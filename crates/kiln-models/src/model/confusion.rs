//! `Model::confusion_matrix`: counts of (true class, predicted class) over a
//! data set, as scikit-learn's `confusion_matrix` lays them out.

use kiln_data::Dataset;

use super::Model;
use crate::error::{ModelError, Result};
use crate::module::Module;

impl<M: Module> Model<M> {
    /// The confusion matrix of the model on `data`: row = true class,
    /// column = predicted class. One output is a binary classifier
    /// (positive above 0.5, targets 0/1: a 2 × 2 matrix); `C` outputs are
    /// class scores (the first top score predicts) against class indices.
    ///
    /// ```no_run
    /// # let device = kiln_backend::Device::auto()?;
    /// # let mut model = kiln_models::Sequential::new(&device, 4).dense(3, kiln_models::Activation::None);
    /// # let data = kiln_data::Dataset::new(vec![0.0; 8], vec![0.0, 2.0], 4, 1)?;
    /// let m = model.confusion_matrix(&data, 32)?;
    /// let correct: u64 = (0..m.len()).map(|c| m[c][c]).sum();
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn confusion_matrix(&mut self, data: &Dataset, batch_size: usize) -> Result<Vec<Vec<u64>>> {
        self.check_data(data)?;
        let outputs: usize = self.output_shape()?.iter().product();
        if data.n_targets() != 1 {
            return Err(ModelError::Shape(format!(
                "a confusion matrix takes one target per row (a class index, or 0/1), the data has {}",
                data.n_targets()
            )));
        }
        let scores = self.predict(data, batch_size)?;
        let classes = outputs.max(2);
        let mut matrix = vec![vec![0u64; classes]; classes];
        for (row, (&target, scores)) in data
            .targets()
            .iter()
            .zip(scores.data().chunks(outputs))
            .enumerate()
        {
            let (truth, predicted) = if outputs == 1 {
                ((target > 0.5) as usize, (scores[0] > 0.5) as usize)
            } else {
                let best = scores
                    .iter()
                    .enumerate()
                    .fold(0, |b, (i, &v)| if v > scores[b] { i } else { b });
                if target.fract() != 0.0 || target < 0.0 || target as usize >= classes {
                    return Err(ModelError::Values(format!(
                        "row {row} has target {target}; expected a class index in 0..{classes}"
                    )));
                }
                (target as usize, best)
            };
            matrix[truth][predicted] += 1;
        }
        Ok(matrix)
    }
}
