//! Feature standardisation, fitted on training rows only.

use crate::dataset::Dataset;
use crate::error::{DataError, Result};

/// `(x − mean) / scale` per feature, with the population standard deviation
/// (scikit-learn's `StandardScaler`); a constant feature gets scale 1.
#[derive(Clone, Debug, PartialEq)]
pub struct Standardizer {
    pub mean: Vec<f32>,
    pub scale: Vec<f32>,
}

impl Standardizer {
    /// Fits on every row of `data` (accumulated in f64).
    pub fn fit(data: &Dataset) -> Self {
        let (n, f) = (data.len().max(1) as f64, data.n_features());
        let mut mean = vec![0.0f64; f];
        for row in data.features().chunks(f) {
            for (m, &x) in mean.iter_mut().zip(row) {
                *m += x as f64 / n;
            }
        }
        let mut var = vec![0.0f64; f];
        for row in data.features().chunks(f) {
            for ((v, &x), m) in var.iter_mut().zip(row).zip(&mean) {
                *v += (x as f64 - m).powi(2) / n;
            }
        }
        Self {
            mean: mean.iter().map(|&m| m as f32).collect(),
            scale: var
                .iter()
                .map(|&v| if v > 0.0 { v.sqrt() as f32 } else { 1.0 })
                .collect(),
        }
    }

    /// Standardises `data`'s features in place.
    pub fn transform(&self, data: &mut Dataset) -> Result<()> {
        let f = data.n_features();
        if f != self.mean.len() {
            return Err(DataError::Shape(format!(
                "the standardizer was fitted on {} features, the data has {f}",
                self.mean.len()
            )));
        }
        for row in data.features_mut().chunks_mut(f) {
            for ((x, m), s) in row.iter_mut().zip(&self.mean).zip(&self.scale) {
                *x = (*x - m) / s;
            }
        }
        Ok(())
    }
}
