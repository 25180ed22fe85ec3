//! What the recurrent layers (LSTM, GRU, simple RNN) check the same way:
//! their sizes, their input's shape, and activations that must be
//! elementwise; and how each framework names and initialises their weights.

use kiln_backend::{Device, UnaryOp};
use kiln_graph::Param;

use crate::error::{ModelError, Result};
use crate::init::uniform;
use crate::layers::{Activation, Naming};
use crate::module::Visitor;
use crate::rng::next_seed;

/// Fails unless a `layer` of `units` on `input` features has both non-zero.
pub(crate) fn check_sizes(layer: &str, input: usize, units: usize) -> Result<()> {
    if input == 0 || units == 0 {
        return Err(ModelError::Settings(format!(
            "{layer}({units} units) on {input} features: both must be at least 1"
        )));
    }
    Ok(())
}

/// Fails unless `shape` is `[batch, timesteps, features]`, said in the
/// user's terms: the weights hold features × gates·units in either layout.
pub(crate) fn check_input(layer: &str, features: usize, shape: &[usize]) -> Result<()> {
    if shape.len() != 3 || shape[2] != features {
        return Err(ModelError::Shape(format!(
            "the {layer} takes {features} features per timestep, samples [timesteps, {features}]; its input has shape {shape:?}, [batch, timesteps, features] expected"
        )));
    }
    Ok(())
}

/// `a` as the elementwise op the unrolled cell applies as `what`.
pub(crate) fn elementwise(layer: &str, a: Activation, what: &str) -> Result<UnaryOp> {
    a.unary().ok_or_else(|| {
        ModelError::Settings(format!(
            "the {layer}'s {what} cannot be {a:?}: it must be elementwise"
        ))
    })
}

/// A PyTorch recurrent weight of `shape`: uniform in ±1/√`hidden`, as
/// `nn.LSTM`, `nn.GRU` and `nn.RNN` initialise every weight and bias.
pub(crate) fn pytorch_uniform(
    device: &Device,
    name: &str,
    shape: &[usize],
    hidden: usize,
) -> Result<Param> {
    let bound = 1.0 / (hidden as f64).sqrt();
    let n = shape.iter().product();
    Ok(Param::new(
        device,
        name,
        &uniform(n, bound, next_seed()),
        shape,
    )?)
}

/// Visits a recurrent layer's kernel, recurrent kernel, bias and recurrent
/// bias, those it has, by Keras' names (`{keras_cell}.kernel`, …) or
/// PyTorch's (`weight_ih_l0`, …).
pub(crate) fn visit_weights(
    v: &mut dyn Visitor,
    naming: Naming,
    keras_cell: &str,
    params: [Option<&Param>; 4],
) {
    let names = match naming {
        Naming::Keras => ["kernel", "recurrent_kernel", "bias", "recurrent_bias"]
            .map(|n| format!("{keras_cell}.{n}")),
        Naming::PyTorch => {
            ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"].map(String::from)
        }
    };
    for (name, p) in names.iter().zip(params) {
        if let Some(p) = p {
            v.param(name, p);
        }
    }
}

/// Fails unless weights of `got` (units, features) fit a `layer` of `want`.
pub(crate) fn check_fit(layer: &str, got: (usize, usize), want: (usize, usize)) -> Result<()> {
    if got != want {
        return Err(ModelError::Weights(format!(
            "weights of a {layer}({} units) on {} features for a {layer}({}) on {}",
            got.0, got.1, want.0, want.1
        )));
    }
    Ok(())
}

/// Writes a layer's kernel, recurrent kernel, bias and recurrent bias (the
/// last where it has one) from `values` in the layer's own layout.
pub(crate) fn write_weights(params: [Option<&Param>; 4], values: [Vec<f32>; 4]) -> Result<()> {
    for (p, v) in params.into_iter().zip(values) {
        if let Some(p) = p {
            p.write(&v)?;
        }
    }
    Ok(())
}
