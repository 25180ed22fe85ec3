//! Parameters live outside any one graph, so every plan built for another
//! batch size (and the optimizer's in-place updates) sees the same values. A
//! [`Param`] is a shared handle: a model's layer, the graphs that read it and
//! the optimizer state keyed by it all hold the same tensor.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use kiln_backend::{Buffer, Device, Tensor};

use crate::error::{GraphError, Result};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

struct ParamData {
    id: u64,
    name: String,
    tensor: Tensor,
    trainable: AtomicBool,
    /// Holds whole numbers (a counter), saved as I64.
    integer: bool,
}

/// A persistent device tensor: a weight, a buffer (running statistics) or
/// optimizer state. Cloning shares it.
///
/// ```no_run
/// # use kiln_graph::Param;
/// let device = kiln_backend::Device::auto()?;
/// let w = Param::new(&device, "weight", &[1.0, 2.0], &[2])?;
/// let same = w.clone();
/// same.write(&[3.0, 4.0])?;
/// assert_eq!(w.values()?, vec![3.0, 4.0]);
/// # Ok::<(), kiln_graph::GraphError>(())
/// ```
#[derive(Clone)]
pub struct Param {
    data: Arc<ParamData>,
}

impl std::fmt::Debug for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Param({:?} {:?})", self.data.name, self.shape())
    }
}

impl PartialEq for Param {
    fn eq(&self, other: &Self) -> bool {
        self.data.id == other.data.id
    }
}

impl Param {
    /// A trainable parameter holding `values` in `shape`.
    pub fn new(device: &Device, name: &str, values: &[f32], shape: &[usize]) -> Result<Self> {
        let n: usize = shape.iter().product();
        if values.len() != n {
            return Err(GraphError::Usage(format!(
                "parameter {name:?}: {} values for shape {shape:?} ({n} elements)",
                values.len()
            )));
        }
        let tensor = Tensor::from_f32(device, values, shape)?;
        Ok(Self {
            data: Arc::new(ParamData {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                name: name.to_string(),
                tensor,
                trainable: AtomicBool::new(true),
                integer: false,
            }),
        })
    }

    /// A counter: whole numbers kept as exact f32 on the device (below
    /// 2²⁴), never trained, saved as I64 (PyTorch's `num_batches_tracked`).
    pub fn counter(device: &Device, name: &str, value: f32) -> Result<Self> {
        let tensor = Tensor::from_f32(device, &[value], &[])?;
        Ok(Self {
            data: Arc::new(ParamData {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                name: name.to_string(),
                tensor,
                trainable: AtomicBool::new(false),
                integer: true,
            }),
        })
    }

    /// True for a counter (see [`Param::counter`]).
    pub fn is_integer(&self) -> bool {
        self.data.integer
    }

    /// A parameter of zeros.
    pub fn zeros(device: &Device, name: &str, shape: &[usize]) -> Result<Self> {
        Self::new(device, name, &vec![0.0; shape.iter().product()], shape)
    }

    /// A unique number, the same for every clone.
    pub fn id(&self) -> u64 {
        self.data.id
    }

    /// The name it was created with (for messages; models name parameters by
    /// their place in the module tree).
    pub fn name(&self) -> &str {
        &self.data.name
    }

    pub fn shape(&self) -> &[usize] {
        self.data.tensor.shape()
    }

    pub fn numel(&self) -> usize {
        self.shape().iter().product()
    }

    pub fn tensor(&self) -> &Tensor {
        &self.data.tensor
    }

    /// The device the parameter lives on.
    pub fn device(&self) -> &Device {
        self.data.tensor.device()
    }

    pub fn buffer(&self) -> &Buffer {
        self.data.tensor.buffer()
    }

    /// Whether graphs built from now on differentiate it (PyTorch's
    /// `requires_grad`). Plans already compiled keep what they were built with.
    pub fn is_trainable(&self) -> bool {
        self.data.trainable.load(Ordering::Relaxed)
    }

    pub fn set_trainable(&self, on: bool) {
        self.data.trainable.store(on, Ordering::Relaxed);
    }

    /// Reads the current values back.
    pub fn values(&self) -> Result<Vec<f32>> {
        Ok(self.data.tensor.to_vec_f32()?)
    }

    /// Overwrites the values in place (same element count), so plans compiled
    /// against it see the new values.
    pub fn write(&self, values: &[f32]) -> Result<()> {
        let n = self.numel();
        if values.len() != n {
            return Err(GraphError::InputSize {
                name: self.data.name.clone(),
                got: values.len(),
                expected: n,
                shape: self.shape().to_vec(),
            });
        }
        self.data
            .tensor
            .device()
            .write(self.buffer(), 0, bytemuck::cast_slice(values))?;
        Ok(())
    }
}

/// Named parameters: a flat namespace for graphs built by hand (tests,
/// conformance, custom loops). Models keep their parameters in their modules.
pub struct ParamStore {
    device: Device,
    params: BTreeMap<String, Param>,
}

impl ParamStore {
    pub fn new(device: &Device) -> Self {
        Self {
            device: device.clone(),
            params: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) a parameter with the given values.
    pub fn insert(&mut self, name: &str, values: &[f32], shape: &[usize]) -> Result<Param> {
        let p = Param::new(&self.device, name, values, shape)?;
        self.params.insert(name.to_string(), p.clone());
        Ok(p)
    }

    pub fn get(&self, name: &str) -> Result<&Param> {
        self.params
            .get(name)
            .ok_or_else(|| GraphError::UnknownParam(name.to_string()))
    }

    /// Reads a parameter's current values back.
    pub fn values(&self, name: &str) -> Result<Vec<f32>> {
        self.get(name)?.values()
    }

    /// Overwrites a parameter's values in place.
    pub fn write(&self, name: &str, values: &[f32]) -> Result<()> {
        self.get(name)?.write(values)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.params.contains_key(name)
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.params.keys().map(String::as_str)
    }
}
