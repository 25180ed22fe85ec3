//! Parameters live outside any one graph, so every plan built for another batch
//! size (and the optimizer's in-place updates) sees the same values.

use std::collections::BTreeMap;

use kiln_backend::{Device, Tensor};

use crate::error::{GraphError, Result};

/// Named persistent tensors: weights, biases and optimizer state.
pub struct ParamStore {
    device: Device,
    tensors: BTreeMap<String, Tensor>,
}

impl ParamStore {
    pub fn new(device: &Device) -> Self {
        Self {
            device: device.clone(),
            tensors: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) a parameter with the given values.
    pub fn insert(&mut self, name: &str, values: &[f32], shape: &[usize]) -> Result<()> {
        let t = Tensor::from_f32(&self.device, values, shape)?;
        self.tensors.insert(name.to_string(), t);
        Ok(())
    }

    pub fn get(&self, name: &str) -> Result<&Tensor> {
        self.tensors
            .get(name)
            .ok_or_else(|| GraphError::UnknownParam(name.to_string()))
    }

    /// Reads a parameter's current values back.
    pub fn values(&self, name: &str) -> Result<Vec<f32>> {
        Ok(self.get(name)?.to_vec_f32()?)
    }

    /// Overwrites a parameter's values in place (same element count), so
    /// plans compiled against it see the new values.
    pub fn write(&self, name: &str, values: &[f32]) -> Result<()> {
        let t = self.get(name)?;
        let n: usize = t.shape().iter().product();
        if values.len() != n {
            return Err(GraphError::InputSize {
                name: name.to_string(),
                got: values.len(),
                expected: n,
                shape: t.shape().to_vec(),
            });
        }
        if n > 0 {
            self.device
                .write(t.buffer(), 0, bytemuck::cast_slice(values))?;
        }
        Ok(())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }
}
