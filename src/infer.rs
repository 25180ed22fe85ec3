//! `kiln infer`: a named model with a weights file, run in eval mode on the
//! tensor `input` of a safetensors file, its logits written to another.

use std::path::Path;

use anyhow::{bail, Context, Result};
use kiln_backend::Device;
use kiln_models::{Model, ModuleExt, ResNet, StateDict};

/// Runs `model` (a name of [`ResNet::VARIANTS`]) with the weights in `weights` (`.pth`
/// or safetensors) on `input`'s tensor `input` (`[N, 3, H, W]`) and writes
/// `logits` (`[N, classes]`) to `output`. The number of classes is read
/// from the weights' `fc.weight` unless given.
pub fn infer(
    device: &Device,
    model: &str,
    weights: &Path,
    num_classes: Option<usize>,
    input: &Path,
    output: &Path,
    batch_size: usize,
) -> Result<()> {
    kiln_models::check_writable(output)?;
    let sd = StateDict::read(weights)?;
    let classes = match (num_classes, sd.tensors.get("fc.weight")) {
        (Some(n), _) => n,
        (None, Some((shape, _))) if !shape.is_empty() => shape[0],
        (None, _) => bail!(
            "{}: no fc.weight to read the number of classes from; pass --num-classes",
            weights.display()
        ),
    };
    let net = ResNet::named(device, model, classes)?;
    net.load_state_dict(&sd, true)
        .with_context(|| format!("loading {} into {model}", weights.display()))?;
    net.eval();
    let inputs = StateDict::read_safetensors(input)?;
    let Some((shape, values)) = inputs.tensors.get("input") else {
        bail!(
            "{}: no tensor named \"input\" (it has {:?})",
            input.display(),
            inputs.tensors.keys().collect::<Vec<_>>()
        );
    };
    if shape.len() != 4 || shape[1] != 3 {
        bail!(
            "{}: input {shape:?}; expected [N, 3, H, W]",
            input.display()
        );
    }
    let mut m = Model::new(device, net, shape[1..].to_vec());
    let logits = m.predict(&(values.as_slice(), shape.as_slice()), batch_size.max(1))?;
    let mut out = StateDict::default();
    out.tensors.insert(
        "logits".into(),
        (logits.shape().to_vec(), logits.into_data()),
    );
    let bytes = out.to_safetensors_bytes(&[])?;
    std::fs::write(output, bytes).with_context(|| format!("writing {}", output.display()))?;
    Ok(())
}
