//! An in-memory dataset: samples of f32 features of any shape (a feature
//! vector, an image, a sequence), each with f32 targets of any shape (a
//! label, a one-hot row, a class index as a scalar).

use crate::error::{DataError, Result};
use crate::rng::SplitMix64;

/// Samples of shape `sample_shape` with targets of shape `target_shape`,
/// row-major, sample after sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    features: Vec<f32>,
    targets: Vec<f32>,
    n_features: usize,
    n_targets: usize,
    sample_shape: Vec<usize>,
    target_shape: Vec<usize>,
    feature_names: Vec<String>,
}

impl Dataset {
    /// A dataset from row-major feature and target values.
    pub fn new(
        features: Vec<f32>,
        targets: Vec<f32>,
        n_features: usize,
        n_targets: usize,
    ) -> Result<Self> {
        if n_features == 0 || n_targets == 0 {
            return Err(DataError::Shape(format!(
                "a dataset needs at least one feature and one target (got {n_features} and {n_targets})"
            )));
        }
        if !features.len().is_multiple_of(n_features)
            || !targets.len().is_multiple_of(n_targets)
            || features.len() / n_features != targets.len() / n_targets
        {
            return Err(DataError::Shape(format!(
                "{} feature values in rows of {n_features} and {} target values in rows of {n_targets} do not make the same number of rows",
                features.len(),
                targets.len()
            )));
        }
        let feature_names = (0..n_features).map(|i| format!("feature_{i}")).collect();
        Ok(Self {
            features,
            targets,
            n_features,
            n_targets,
            sample_shape: vec![n_features],
            target_shape: vec![n_targets],
            feature_names,
        })
    }

    /// A dataset of samples of `sample_shape` (`[1, 28, 28]` images, `[10, 3]`
    /// windows) with targets of `target_shape` (`[]` for a class index).
    ///
    /// ```
    /// let images = vec![0.5; 2 * 28 * 28];
    /// let labels = vec![3.0, 7.0];
    /// let d = kiln_data::Dataset::with_shapes(images, &[1, 28, 28], labels, &[])?;
    /// assert_eq!((d.len(), d.sample_shape()), (2, &[1usize, 28, 28][..]));
    /// # Ok::<(), kiln_data::DataError>(())
    /// ```
    pub fn with_shapes(
        features: Vec<f32>,
        sample_shape: &[usize],
        targets: Vec<f32>,
        target_shape: &[usize],
    ) -> Result<Self> {
        let (nf, nt) = (
            sample_shape.iter().product::<usize>(),
            target_shape.iter().product::<usize>(),
        );
        let mut d = Self::new(features, targets, nf, nt)?;
        d.sample_shape = sample_shape.to_vec();
        d.target_shape = target_shape.to_vec();
        Ok(d)
    }

    /// Names the features (a CSV header gives them).
    pub fn with_feature_names(mut self, names: Vec<String>) -> Result<Self> {
        if names.len() != self.n_features {
            return Err(DataError::Shape(format!(
                "{} names for {} features",
                names.len(),
                self.n_features
            )));
        }
        self.feature_names = names;
        Ok(self)
    }

    pub fn len(&self) -> usize {
        self.targets.len() / self.n_targets
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Feature values per sample (the product of the sample shape).
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// The shape of one sample.
    pub fn sample_shape(&self) -> &[usize] {
        &self.sample_shape
    }

    /// The shape of one sample's targets.
    pub fn target_shape(&self) -> &[usize] {
        &self.target_shape
    }

    pub fn n_targets(&self) -> usize {
        self.n_targets
    }

    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    pub fn features(&self) -> &[f32] {
        &self.features
    }

    pub fn features_mut(&mut self) -> &mut [f32] {
        &mut self.features
    }

    pub fn targets(&self) -> &[f32] {
        &self.targets
    }

    pub fn targets_mut(&mut self) -> &mut [f32] {
        &mut self.targets
    }

    /// The rows `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        let (f, t) = self.gather(indices)?;
        Ok(Self {
            features: f,
            targets: t,
            ..self.clone_empty()
        })
    }

    fn clone_empty(&self) -> Self {
        Self {
            features: vec![],
            targets: vec![],
            n_features: self.n_features,
            n_targets: self.n_targets,
            sample_shape: self.sample_shape.clone(),
            target_shape: self.target_shape.clone(),
            feature_names: self.feature_names.clone(),
        }
    }

    /// Features and targets of the rows `indices`, concatenated (a batch).
    pub fn gather(&self, indices: &[usize]) -> Result<(Vec<f32>, Vec<f32>)> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(DataError::Shape(format!(
                "row {bad} is out of range for {} rows",
                self.len()
            )));
        }
        let mut f = Vec::with_capacity(indices.len() * self.n_features);
        let mut t = Vec::with_capacity(indices.len() * self.n_targets);
        for &i in indices {
            f.extend_from_slice(&self.features[i * self.n_features..(i + 1) * self.n_features]);
            t.extend_from_slice(&self.targets[i * self.n_targets..(i + 1) * self.n_targets]);
        }
        Ok((f, t))
    }

    /// A seeded shuffle, then the first `train_fraction` of rows and the rest
    /// (scikit-learn's `train_test_split`, with kiln's own generator).
    pub fn split(&self, train_fraction: f64, seed: u64) -> Result<(Self, Self)> {
        let n = self.len();
        let n_train = (n as f64 * train_fraction).round() as usize;
        if !(0.0..1.0).contains(&train_fraction) || n_train == 0 || n_train >= n {
            return Err(DataError::Settings(format!(
                "a train fraction of {train_fraction} leaves an empty side of {n} rows; it must be in (0, 1)"
            )));
        }
        let mut order: Vec<usize> = (0..n).collect();
        SplitMix64::new(seed).shuffle(&mut order);
        Ok((
            self.subset(&order[..n_train])?,
            self.subset(&order[n_train..])?,
        ))
    }

    /// Keras' `validation_split`: the last `fraction` of rows, unshuffled, is
    /// held out (split at ⌈n·(1 − fraction)⌉ as Keras 3 does).
    pub fn split_tail(&self, fraction: f64) -> Result<(Self, Self)> {
        let n = self.len();
        let at = (n as f64 * (1.0 - fraction)).ceil() as usize;
        if !(fraction > 0.0 && fraction < 1.0) || at == 0 || at >= n {
            return Err(DataError::Settings(format!(
                "validation_split {fraction} of {n} rows leaves an empty side; it must be in (0, 1)"
            )));
        }
        let head: Vec<usize> = (0..at).collect();
        let tail: Vec<usize> = (at..n).collect();
        Ok((self.subset(&head)?, self.subset(&tail)?))
    }
}
