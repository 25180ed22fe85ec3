//! Device tensors: a pooled buffer with a shape and an element type, uploaded
//! from and read back to host vectors.

use std::sync::mpsc;

use crate::error::{BackendError, Result};
use crate::{Buffer, Device};

/// Element type of a tensor. All are four bytes wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    I32,
    U32,
}

impl DType {
    pub fn size(self) -> usize {
        4
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            DType::F32 => "f32",
            DType::I32 => "i32",
            DType::U32 => "u32",
        };
        f.write_str(name)
    }
}

/// A dense, row-major tensor on a [`Device`].
#[derive(Clone, Debug)]
pub struct Tensor {
    device: Device,
    buffer: Buffer,
    shape: Vec<usize>,
    dtype: DType,
}

impl Device {
    /// A pooled buffer for `numel` elements of `dtype`, checked against the
    /// adapter's binding limit. `what` names the tensor in errors.
    pub fn alloc(&self, what: &str, numel: usize, dtype: DType) -> Result<Buffer> {
        let bytes = (numel as u64) * dtype.size() as u64;
        let limit = self.max_binding_bytes();
        if bytes > limit {
            return Err(BackendError::BindingTooLarge {
                what: what.to_string(),
                bytes,
                limit,
            });
        }
        self.take_buffer(what, bytes)
    }
}

impl Tensor {
    /// An uninitialised tensor (its contents are whatever the pooled buffer held).
    pub fn empty(device: &Device, shape: &[usize], dtype: DType) -> Result<Self> {
        let numel: usize = shape.iter().product();
        if numel == 0 {
            return Err(BackendError::Empty {
                op: "tensor".into(),
                shape: shape.to_vec(),
            });
        }
        let buffer = device.alloc(&format!("tensor {shape:?}"), numel, dtype)?;
        Ok(Self {
            device: device.clone(),
            buffer,
            shape: shape.to_vec(),
            dtype,
        })
    }

    fn upload(
        device: &Device,
        bytes: &[u8],
        numel: usize,
        shape: &[usize],
        dtype: DType,
    ) -> Result<Self> {
        let expected: usize = shape.iter().product();
        if expected != numel {
            return Err(crate::error::shape_error(
                "upload",
                format!("{numel} values given for shape {shape:?}, which holds {expected}"),
            ));
        }
        let t = Self::empty(device, shape, dtype)?;
        device.write(&t.buffer, 0, bytes)?;
        Ok(t)
    }

    /// Uploads f32 data with the given shape.
    pub fn from_f32(device: &Device, data: &[f32], shape: &[usize]) -> Result<Self> {
        Self::upload(
            device,
            bytemuck::cast_slice(data),
            data.len(),
            shape,
            DType::F32,
        )
    }

    /// Uploads i32 data with the given shape.
    pub fn from_i32(device: &Device, data: &[i32], shape: &[usize]) -> Result<Self> {
        Self::upload(
            device,
            bytemuck::cast_slice(data),
            data.len(),
            shape,
            DType::I32,
        )
    }

    /// Uploads u32 data with the given shape.
    pub fn from_u32(device: &Device, data: &[u32], shape: &[usize]) -> Result<Self> {
        Self::upload(
            device,
            bytemuck::cast_slice(data),
            data.len(),
            shape,
            DType::U32,
        )
    }

    /// Wraps an existing buffer; it must hold at least the shape's elements.
    pub fn from_buffer(
        device: &Device,
        buffer: Buffer,
        shape: &[usize],
        dtype: DType,
    ) -> Result<Self> {
        let bytes = shape.iter().product::<usize>() as u64 * dtype.size() as u64;
        if bytes > buffer.size() || bytes == 0 {
            return Err(crate::error::invalid(
                "from_buffer",
                format!(
                    "shape {shape:?} needs {bytes} bytes; the buffer has {}",
                    buffer.size()
                ),
            ));
        }
        Ok(Self {
            device: device.clone(),
            buffer,
            shape: shape.to_vec(),
            dtype,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn buffer(&self) -> &Buffer {
        &self.buffer
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The same buffer seen with another shape of equal element count.
    pub fn reshape(&self, shape: &[usize]) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != self.numel() {
            return Err(crate::error::shape_error(
                "reshape",
                format!(
                    "{:?} has {} elements, {shape:?} has {n}",
                    self.shape,
                    self.numel()
                ),
            ));
        }
        Ok(Self {
            shape: shape.to_vec(),
            ..self.clone()
        })
    }

    /// Reads the raw bytes back (waits for all submitted work).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        read_buffer(
            &self.device,
            &self.buffer,
            (self.numel() * self.dtype.size()) as u64,
        )
    }

    /// Reads an f32 tensor back.
    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        self.expect_dtype("to_vec_f32", DType::F32)?;
        Ok(bytemuck::cast_slice(&self.to_bytes()?).to_vec())
    }

    /// Reads an i32 tensor back.
    pub fn to_vec_i32(&self) -> Result<Vec<i32>> {
        self.expect_dtype("to_vec_i32", DType::I32)?;
        Ok(bytemuck::cast_slice(&self.to_bytes()?).to_vec())
    }

    pub(crate) fn expect_dtype(&self, op: &str, dtype: DType) -> Result<()> {
        if self.dtype != dtype {
            return Err(BackendError::DType {
                op: op.to_string(),
                expected: dtype.to_string(),
                got: self.dtype.to_string(),
            });
        }
        Ok(())
    }
}

/// Copies the first `bytes` bytes of `buffer` to the host.
pub fn read_buffer(device: &Device, buffer: &Buffer, bytes: u64) -> Result<Vec<u8>> {
    let mut out = device.run_and_read(&[], &[(buffer, bytes)])?;
    Ok(out.remove(0))
}

impl Device {
    /// Runs `kernels` and copies the first bytes of each `reads` buffer back,
    /// all in one submission; waits for the results.
    pub fn run_and_read(
        &self,
        kernels: &[&crate::Kernel],
        reads: &[(&Buffer, u64)],
    ) -> Result<Vec<Vec<u8>>> {
        let staging: Vec<(wgpu::Buffer, u64)> = reads
            .iter()
            .map(|(_, bytes)| {
                let size = bytes.div_ceil(4) * 4;
                let b = self.inner.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("kiln readback"),
                    size,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                (b, size)
            })
            .collect();
        self.run_with(kernels, |encoder| {
            for ((src, _), (dst, size)) in reads.iter().zip(&staging) {
                encoder.copy_buffer_to_buffer(src.raw(), 0, dst, 0, *size);
            }
        })?;
        if reads.is_empty() {
            // Nothing asked for: the step runs while the caller goes on.
            return Ok(Vec::new());
        }
        let (tx, rx) = mpsc::channel();
        for (b, _) in &staging {
            let tx = tx.clone();
            b.map_async(wgpu::MapMode::Read, .., move |r| {
                let _ = tx.send(r);
            });
        }
        drop(tx);
        self.synchronize()?;
        for _ in 0..staging.len() {
            rx.recv()
                .map_err(|e| BackendError::Readback(e.to_string()))?
                .map_err(|e| BackendError::Readback(e.to_string()))?;
        }
        staging
            .iter()
            .zip(reads)
            .map(|((b, _), (_, bytes))| {
                let data = b
                    .get_mapped_range(..)
                    .map_err(|e| BackendError::Readback(e.to_string()))?
                    .to_vec();
                b.unmap();
                Ok(data[..*bytes as usize].to_vec())
            })
            .collect()
    }
}
