//! Checkpoints: every weight, buffer and optimizer state of a model in one
//! safetensors file, with the step counters in its metadata. Writes are
//! atomic: a temporary file beside the target, synced, then renamed over it,
//! so an interrupted write leaves the previous checkpoint intact.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::error::{ModelError, Result};
use crate::trainable::{Trainable, TrainingState};

const FORMAT: &str = "kiln-checkpoint-2";
/// Optimizer state is stored under this prefix, beside the state dict.
const OPTIMIZER: &str = "optimizer.";

fn err(path: &Path, detail: impl Into<String>) -> ModelError {
    ModelError::Checkpoint {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

fn temporary(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Writes `bytes` to `path` atomically. `interrupt_after` stops the write
/// after that many bytes with an error, as a crash would (for tests).
pub(crate) fn write_atomic(
    path: &Path,
    bytes: &[u8],
    interrupt_after: Option<usize>,
) -> Result<()> {
    let tmp = temporary(path);
    let io = |e: std::io::Error| err(path, e.to_string());
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    if let Some(n) = interrupt_after {
        file.write_all(&bytes[..n.min(bytes.len())]).map_err(io)?;
        return Err(err(path, format!("write interrupted after {n} bytes")));
    }
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io)
}

pub(crate) fn serialize(model: &dyn Trainable, epoch: usize) -> Result<Vec<u8>> {
    let state = model.training_state()?;
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = state
        .weights
        .iter()
        .map(|(n, s, v)| (n.clone(), s.clone(), bytemuck::cast_slice(v).to_vec()))
        .chain(state.optimizer.iter().map(|(n, s, v)| {
            (
                format!("{OPTIMIZER}{n}"),
                s.clone(),
                bytemuck::cast_slice(v).to_vec(),
            )
        }))
        .collect();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| ModelError::Weights(format!("tensor {n}: {e}")))
        })
        .collect::<Result<_>>()?;
    let meta: HashMap<String, String> = [
        ("format".to_string(), FORMAT.to_string()),
        ("epoch".to_string(), epoch.to_string()),
        ("steps".to_string(), state.steps.to_string()),
        ("draws".to_string(), state.draws.to_string()),
    ]
    .into();
    safetensors::serialize(views, Some(meta))
        .map_err(|e| ModelError::Weights(format!("serialising a checkpoint: {e}")))
}

/// Saves every weight, buffer and optimizer state of `model` (after
/// `epoch`) to `path`.
pub fn save(model: &dyn Trainable, path: impl AsRef<Path>, epoch: usize) -> Result<()> {
    let bytes = serialize(model, epoch)?;
    write_atomic(path.as_ref(), &bytes, None)
}

/// Restores a checkpoint written by [`save`] into a model of the same
/// structure (compiled with the same optimizer); returns the epoch it was
/// taken after. Everything is checked before anything is written.
pub fn load(model: &mut dyn Trainable, path: impl AsRef<Path>) -> Result<usize> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| err(path, e.to_string()))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| err(path, e.to_string()))?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| err(path, e.to_string()))?;
    let meta = header.metadata().clone().unwrap_or_default();
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(err(
            path,
            format!("not a kiln checkpoint (expected format {FORMAT})"),
        ));
    }
    let number = |key: &str| -> Result<u64> {
        meta.get(key)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| err(path, format!("metadata {key:?} is missing or not a number")))
    };
    let (epoch, steps, draws) = (number("epoch")?, number("steps")?, number("draws")?);
    let mut state = TrainingState {
        steps,
        draws,
        ..Default::default()
    };
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(err(
                path,
                format!(
                    "tensor {name:?} is {:?}; checkpoints hold F32",
                    view.dtype()
                ),
            ));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        match name.strip_prefix(OPTIMIZER) {
            Some(n) => state
                .optimizer
                .push((n.to_string(), view.shape().to_vec(), values)),
            None => state.weights.push((name, view.shape().to_vec(), values)),
        }
    }
    model
        .restore(&state)
        .map_err(|e| err(path, e.to_string()))?;
    Ok(epoch as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Activation, Loss, Metric, Optimizer, Sequential};

    #[test]
    fn an_interrupted_write_leaves_the_previous_checkpoint_loadable() {
        let device = kiln_backend::Device::auto().expect("an adapter");
        let mut model = Sequential::new(&device, 3).dense(2, Activation::Tanh);
        model
            .compile(
                Optimizer::adam(0.1),
                Loss::MeanSquaredError,
                &[Metric::MeanAbsoluteError],
            )
            .unwrap();
        let dir = std::env::temp_dir().join(format!("kiln-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("model.safetensors");
        save(&model, &path, 1).unwrap();
        let saved = model.value("dense.kernel").unwrap();

        // Train, then crash halfway through writing the next checkpoint.
        model
            .train_on_batch(&[1.0, 2.0, 3.0], &[0.5, -0.5])
            .unwrap();
        let moved = model.value("dense.kernel").unwrap();
        assert_ne!(moved, saved);
        let bytes = serialize(&model, 2).unwrap();
        let e = write_atomic(&path, &bytes, Some(bytes.len() / 2)).unwrap_err();
        assert!(e.to_string().contains("interrupted"), "{e}");
        assert!(
            temporary(&path).exists(),
            "the half-written file is the temporary one"
        );

        // The previous checkpoint loads, whole.
        assert_eq!(load(&mut model, &path).unwrap(), 1);
        assert_eq!(model.value("dense.kernel").unwrap(), saved);
        assert_eq!(model.steps(), 0);
        // A completed save replaces it.
        model.set_weight("dense.kernel", &moved).unwrap();
        save(&model, &path, 2).unwrap();
        assert_eq!(load(&mut model, &path).unwrap(), 2);
        assert_eq!(model.value("dense.kernel").unwrap(), moved);
        std::fs::remove_dir_all(&dir).ok();
    }
}
