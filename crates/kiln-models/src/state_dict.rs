//! [`StateDict`]: tensors by name, and the files they come in and go out
//! as: safetensors (read and written) and PyTorch's `.pth` (read, see
//! `pth.rs`).

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::error::{ModelError, Result};

/// Tensors by name, read from or written to safetensors: a state dict.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateDict {
    /// (shape, values) by name; integer tensors converted exactly.
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

impl StateDict {
    /// Reads every tensor of a safetensors file (F32, F64, F16, BF16 and
    /// integer tensors are converted to f32).
    pub fn read_safetensors(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| load_err(path, e.to_string()))?;
        Self::from_safetensors_bytes(&bytes).map_err(|e| load_err(path, e.to_string()))
    }

    /// Reads a PyTorch `.pth` state dict (`torch.save`'s zip or legacy
    /// format) without running anything it asks for (see `pth.rs`).
    pub fn read_pth(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| load_err(path, e.to_string()))?;
        crate::pth::read_pth_bytes(&bytes)
            .map(|tensors| Self { tensors })
            .map_err(|e| load_err(path, e.to_string()))
    }

    /// Reads a weights file, safetensors or `.pth`, told apart by content
    /// (a safetensors file's JSON header starts at its ninth byte).
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let mut head = [0u8; 9];
        let n = std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
            .map_err(|e| load_err(path, e.to_string()))?;
        if n == 9 && head[8] == b'{' {
            Self::read_safetensors(path)
        } else {
            Self::read_pth(path)
        }
    }

    /// Parses safetensors bytes.
    pub fn from_safetensors_bytes(bytes: &[u8]) -> Result<Self> {
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| ModelError::Weights(format!("not a safetensors file: {e}")))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            let values = to_f32(view.dtype(), view.data()).ok_or_else(|| {
                ModelError::Weights(format!(
                    "tensor {name:?} has dtype {:?}; expected a float or integer type",
                    view.dtype()
                ))
            })?;
            tensors.insert(name, (view.shape().to_vec(), values));
        }
        Ok(Self { tensors })
    }

    /// Writes the tensors as safetensors: F32, or I64 for the names in
    /// `integers`.
    pub fn to_safetensors_bytes(&self, integers: &[String]) -> Result<Vec<u8>> {
        let mut raw: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        for (name, (shape, values)) in &self.tensors {
            if integers.contains(name) {
                let ints: Vec<i64> = values.iter().map(|&v| v as i64).collect();
                raw.push((
                    name.clone(),
                    Dtype::I64,
                    shape.clone(),
                    bytemuck::cast_slice(&ints).to_vec(),
                ));
            } else {
                raw.push((
                    name.clone(),
                    Dtype::F32,
                    shape.clone(),
                    bytemuck::cast_slice(values).to_vec(),
                ));
            }
        }
        let views: Vec<(String, TensorView<'_>)> = raw
            .iter()
            .map(|(n, d, s, b)| {
                TensorView::new(*d, s.clone(), b)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| ModelError::Weights(format!("tensor {n}: {e}")))
            })
            .collect::<Result<_>>()?;
        safetensors::serialize(views, None)
            .map_err(|e| ModelError::Weights(format!("serialising tensors: {e}")))
    }
}

pub(crate) fn load_err(path: &Path, detail: String) -> ModelError {
    ModelError::Checkpoint {
        path: path.display().to_string(),
        detail,
    }
}

/// Little-endian tensor bytes of `dtype` as f32 values, or `None` for a
/// dtype kiln does not read.
pub(crate) fn to_f32(dtype: Dtype, b: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        Dtype::F16 => b
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => b
            .chunks_exact(2)
            .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
            .collect(),
        Dtype::I64 => b
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        Dtype::I32 => b
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
            .collect(),
        Dtype::U8 => b.iter().map(|&v| v as f32).collect(),
        Dtype::BOOL => b.iter().map(|&v| (v != 0) as u8 as f32).collect(),
        _ => return None,
    })
}
