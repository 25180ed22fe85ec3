//! Layers: each adds its nodes to a graph, in training or inference mode.

use kiln_graph::{Activation, Graph, NodeId, ParamStore};

use crate::error::{ModelError, Result};
use crate::init::Init;

/// Batch-normalisation conventions, named because the two frameworks differ.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormConfig {
    /// Weight of the old running value: Keras' `momentum` (0.99), or
    /// `1 − momentum` for PyTorch (0.9).
    pub keep: f32,
    pub eps: f32,
    /// PyTorch moves the running variance toward the unbiased batch variance.
    pub unbiased_running_var: bool,
}

impl BatchNormConfig {
    /// Keras `BatchNormalization()`: momentum 0.99, epsilon 1e-3.
    pub const KERAS: Self = Self {
        keep: 0.99,
        eps: 1e-3,
        unbiased_running_var: false,
    };
    /// PyTorch `BatchNorm1d/2d`: momentum 0.1, eps 1e-5, unbiased running variance.
    pub const PYTORCH: Self = Self {
        keep: 0.9,
        eps: 1e-5,
        unbiased_running_var: true,
    };
}

/// One layer of a [`crate::Sequential`].
#[derive(Clone, Debug, PartialEq)]
pub enum Layer {
    /// `act(x · kernel + bias)`, kernel `[in, units]`.
    Dense {
        units: usize,
        activation: Activation,
        init: Init,
    },
    /// Batch normalisation over the features.
    BatchNorm(BatchNormConfig),
    /// Zeroes a `rate` fraction of values in training and scales the rest by
    /// `1/(1 − rate)`; the identity in inference.
    Dropout { rate: f32 },
    /// An activation on its own.
    Activation(Activation),
    /// Softmax over the last axis.
    Softmax,
}

/// Whether a graph trains (batch statistics, dropout on) or infers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Train,
    Infer,
}

/// What a layer needs from the graph being built.
pub(crate) struct BuildContext<'a> {
    pub graph: &'a mut Graph,
    pub params: &'a ParamStore,
    pub mode: Mode,
    /// The per-step counter input that dropout masks draw from.
    pub step: Option<NodeId>,
    /// Whether training-mode batch norm moves its running statistics.
    pub update_stats: bool,
    /// Trainable parameter nodes, in creation order (name, node).
    pub trainable: Vec<(String, NodeId)>,
}

impl Layer {
    /// Keras' base name of the layer kind (`dense`, `dense_1`, … are derived).
    pub fn kind(&self) -> &'static str {
        match self {
            Layer::Dense { .. } => "dense",
            Layer::BatchNorm(_) => "batch_normalization",
            Layer::Dropout { .. } => "dropout",
            Layer::Activation(_) => "activation",
            Layer::Softmax => "softmax",
        }
    }

    /// Output features for `input` features.
    pub fn output_features(&self, input: usize) -> usize {
        match self {
            Layer::Dense { units, .. } => *units,
            _ => input,
        }
    }

    /// The parameters this layer owns, with their initial values:
    /// (name suffix, shape, values, trainable).
    pub(crate) fn initial_params(
        &self,
        input: usize,
        seed: u64,
    ) -> Vec<(&'static str, Vec<usize>, Vec<f32>, bool)> {
        match self {
            Layer::Dense { units, init, .. } => {
                let (w, b) = init.values(input, *units, seed);
                vec![
                    ("kernel", vec![input, *units], w, true),
                    ("bias", vec![*units], b, true),
                ]
            }
            Layer::BatchNorm(_) => {
                let mut stats = vec![0.0; input];
                stats.extend(vec![1.0; input]);
                vec![
                    ("gamma", vec![input], vec![1.0; input], true),
                    ("beta", vec![input], vec![0.0; input], true),
                    // row 0 the moving mean, row 1 the moving variance
                    ("moving_stats", vec![2, input], stats, false),
                ]
            }
            _ => vec![],
        }
    }

    /// Checks the layer's settings.
    pub(crate) fn validate(&self, name: &str) -> Result<()> {
        let bad = |detail: String| Err(ModelError::Invalid(format!("layer {name:?}: {detail}")));
        match self {
            Layer::Dense { units: 0, .. } => bad("a dense layer needs at least one unit".into()),
            Layer::Dropout { rate } if !(0.0..1.0).contains(rate) => {
                bad(format!("dropout rate {rate} must be in [0, 1)"))
            }
            Layer::BatchNorm(c) if !(c.eps > 0.0 && (0.0..1.0).contains(&c.keep)) => bad(format!(
                "batch-norm epsilon {} must be positive and momentum {} in [0, 1)",
                c.eps, c.keep
            )),
            _ => Ok(()),
        }
    }

    /// Adds the layer's nodes for input `x` (shape `[batch, features]`).
    pub(crate) fn build(
        &self,
        name: &str,
        index: usize,
        seed: u64,
        ctx: &mut BuildContext<'_>,
        x: NodeId,
    ) -> Result<NodeId> {
        self.build_inner(name, index, seed, ctx, x)
            .map_err(|source| match source {
                ModelError::Graph(source) => ModelError::Layer {
                    layer: name.to_string(),
                    source,
                },
                other => other,
            })
    }

    fn build_inner(
        &self,
        name: &str,
        index: usize,
        seed: u64,
        ctx: &mut BuildContext<'_>,
        x: NodeId,
    ) -> Result<NodeId> {
        let param = |ctx: &mut BuildContext<'_>, suffix: &str| -> Result<NodeId> {
            let full = format!("{name}/{suffix}");
            let id = ctx.graph.param(ctx.params, &full)?;
            ctx.trainable.push((full, id));
            Ok(id)
        };
        Ok(match self {
            Layer::Dense { activation, .. } => {
                let w = param(ctx, "kernel")?;
                let b = param(ctx, "bias")?;
                ctx.graph.dense(x, w, Some(b), *activation, false)?
            }
            Layer::BatchNorm(c) => {
                let gamma = param(ctx, "gamma")?;
                let beta = param(ctx, "beta")?;
                let moving = ctx
                    .graph
                    .frozen_param(ctx.params, &format!("{name}/moving_stats"))?;
                match ctx.mode {
                    Mode::Train => {
                        let stats = ctx.graph.moments(x, 1)?;
                        let y = ctx
                            .graph
                            .batch_norm(x, stats, gamma, beta, 1, c.eps, true)?;
                        let m = ctx.graph.shape(x)[0] as f32;
                        let factor = if c.unbiased_running_var && m > 1.0 {
                            m / (m - 1.0)
                        } else {
                            1.0
                        };
                        if ctx.update_stats {
                            ctx.graph.running_stats(moving, stats, c.keep, factor)?;
                        }
                        y
                    }
                    Mode::Infer => ctx
                        .graph
                        .batch_norm(x, moving, gamma, beta, 1, c.eps, false)?,
                }
            }
            Layer::Dropout { rate } => match (ctx.mode, ctx.step) {
                (Mode::Train, Some(step)) if *rate > 0.0 => {
                    let layer_seed = seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    ctx.graph.dropout(x, *rate, layer_seed, step)?
                }
                _ => x,
            },
            Layer::Activation(a) => {
                let op = match a {
                    Activation::None => return Ok(x),
                    Activation::Relu => kiln_graph::UnaryOp::Relu,
                    Activation::Sigmoid => kiln_graph::UnaryOp::Sigmoid,
                    Activation::Tanh => kiln_graph::UnaryOp::Tanh,
                };
                ctx.graph.unary(op, x)?
            }
            Layer::Softmax => ctx.graph.softmax(x, -1, false)?,
        })
    }
}
