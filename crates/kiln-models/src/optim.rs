//! Optimizer steps as graph formulas, with the semantics of ONNX's training
//! operators (`ai.onnx.preview.training` Adam, Momentum, Adagrad). The learning
//! rate `lr` and the step count `t` are scalar nodes, so one compiled plan
//! serves every step. A trainer assigns the returned values back to the
//! parameter and its state with [`Graph::assign`].

use kiln_graph::{BinaryOp, Graph, NodeId, Result, UnaryOp};

/// Adam's hyper-parameters (ONNX names: `alpha` and `beta` are β₁ and β₂).
#[derive(Clone, Copy, Debug)]
pub struct AdamConfig {
    pub alpha: f32,
    pub beta: f32,
    pub epsilon: f32,
    /// L2 coefficient added to the gradient.
    pub norm_coefficient: f32,
    /// Weight decay applied after the step.
    pub norm_coefficient_post: f32,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            alpha: 0.9,
            beta: 0.999,
            epsilon: 1e-6,
            norm_coefficient: 0.0,
            norm_coefficient_post: 0.0,
        }
    }
}

/// SGD with momentum (ONNX Momentum).
#[derive(Clone, Copy, Debug)]
pub struct MomentumConfig {
    pub alpha: f32,
    pub beta: f32,
    pub nesterov: bool,
    pub norm_coefficient: f32,
}

/// Adagrad (ONNX Adagrad).
#[derive(Clone, Copy, Debug)]
pub struct AdagradConfig {
    pub decay_factor: f32,
    pub epsilon: f32,
    pub norm_coefficient: f32,
}

/// `norm_coefficient · x + grad`.
fn regularized(g: &mut Graph, x: NodeId, grad: NodeId, norm_coefficient: f32) -> Result<NodeId> {
    if norm_coefficient == 0.0 {
        return Ok(grad);
    }
    let l2 = g.scale(x, norm_coefficient)?;
    g.add(l2, grad)
}

/// `t > 0 ? when_positive : otherwise`, for scalar nodes.
fn if_started(
    g: &mut Graph,
    t: NodeId,
    when_positive: NodeId,
    otherwise: NodeId,
) -> Result<NodeId> {
    let zero = g.scalar(0.0);
    let started = g.binary(BinaryOp::Gt, t, zero)?;
    g.select(started, when_positive, otherwise)
}

/// One Adam step from the moments `(v, h)`: returns (x, v, h), updated.
pub fn adam_step(
    g: &mut Graph,
    lr: NodeId,
    t: NodeId,
    x: NodeId,
    grad: NodeId,
    (v, h): (NodeId, NodeId),
    cfg: &AdamConfig,
) -> Result<(NodeId, NodeId, NodeId)> {
    let gr = regularized(g, x, grad, cfg.norm_coefficient)?;
    let v_old = g.scale(v, cfg.alpha)?;
    let v_in = g.scale(gr, 1.0 - cfg.alpha)?;
    let v_new = g.add(v_old, v_in)?;
    let h_old = g.scale(h, cfg.beta)?;
    let g2 = g.unary(UnaryOp::Square, gr)?;
    let h_in = g.scale(g2, 1.0 - cfg.beta)?;
    let h_new = g.add(h_old, h_in)?;
    let h_sqrt = g.unary(UnaryOp::Sqrt, h_new)?;
    let denom = g.unary(UnaryOp::AddScalar(cfg.epsilon), h_sqrt)?;
    // Bias correction: lr · sqrt(1 - β₂ᵗ) / (1 - β₁ᵗ) once t > 0.
    let (b1, b2) = (g.scalar(cfg.alpha), g.scalar(cfg.beta));
    let b1t = g.binary(BinaryOp::Pow, b1, t)?;
    let b2t = g.binary(BinaryOp::Pow, b2, t)?;
    let one_minus_b2t = g.scale(b2t, -1.0)?;
    let one_minus_b2t = g.unary(UnaryOp::AddScalar(1.0), one_minus_b2t)?;
    let sqrt_b2 = g.unary(UnaryOp::Sqrt, one_minus_b2t)?;
    let one_minus_b1t = g.scale(b1t, -1.0)?;
    let one_minus_b1t = g.unary(UnaryOp::AddScalar(1.0), one_minus_b1t)?;
    let corrected = g.mul(lr, sqrt_b2)?;
    let corrected = g.div(corrected, one_minus_b1t)?;
    let lr_t = if_started(g, t, corrected, lr)?;
    let ratio = g.div(v_new, denom)?;
    let step = g.mul(lr_t, ratio)?;
    let x_new = g.sub(x, step)?;
    let x_new = if cfg.norm_coefficient_post != 0.0 {
        g.scale(x_new, 1.0 - cfg.norm_coefficient_post)?
    } else {
        x_new
    };
    Ok((x_new, v_new, h_new))
}

/// One momentum step: returns (x, velocity), updated.
pub fn momentum_step(
    g: &mut Graph,
    lr: NodeId,
    t: NodeId,
    x: NodeId,
    grad: NodeId,
    v: NodeId,
    cfg: &MomentumConfig,
) -> Result<(NodeId, NodeId)> {
    let gr = regularized(g, x, grad, cfg.norm_coefficient)?;
    // The first step (t = 0) takes the whole gradient.
    let beta = g.scalar(cfg.beta);
    let one = g.scalar(1.0);
    let beta_t = if_started(g, t, beta, one)?;
    let v_old = g.scale(v, cfg.alpha)?;
    let v_in = g.mul(beta_t, gr)?;
    let v_new = g.add(v_old, v_in)?;
    let direction = if cfg.nesterov {
        let ahead = g.scale(v_new, cfg.alpha)?;
        g.add(gr, ahead)?
    } else {
        v_new
    };
    let step = g.mul(lr, direction)?;
    Ok((g.sub(x, step)?, v_new))
}

/// One Adagrad step: returns (x, accumulated squared gradient), updated.
pub fn adagrad_step(
    g: &mut Graph,
    lr: NodeId,
    t: NodeId,
    x: NodeId,
    grad: NodeId,
    h: NodeId,
    cfg: &AdagradConfig,
) -> Result<(NodeId, NodeId)> {
    let decay = g.scale(t, cfg.decay_factor)?;
    let decay = g.unary(UnaryOp::AddScalar(1.0), decay)?;
    let lr_t = g.div(lr, decay)?;
    let gr = regularized(g, x, grad, cfg.norm_coefficient)?;
    let g2 = g.unary(UnaryOp::Square, gr)?;
    let h_new = g.add(h, g2)?;
    let h_sqrt = g.unary(UnaryOp::Sqrt, h_new)?;
    let denom = g.unary(UnaryOp::AddScalar(cfg.epsilon), h_sqrt)?;
    let ratio = g.div(gr, denom)?;
    let step = g.mul(lr_t, ratio)?;
    Ok((g.sub(x, step)?, h_new))
}
