//! The vector-Jacobian products of the one-input elementwise ops, each
//! beside the others so that a new op's gradient is one arm here.

use kiln_backend::{BinaryOp, UnaryOp};

use crate::error::Result;
use crate::graph::{Graph, NodeId};

/// The VJP of a unary op `out = op(x)` for upstream `g`.
pub(super) fn unary_vjp(
    gr: &mut Graph,
    op: UnaryOp,
    x: NodeId,
    out: NodeId,
    g: NodeId,
) -> Result<Option<NodeId>> {
    let v = match op {
        UnaryOp::Identity | UnaryOp::AddScalar(_) => g,
        UnaryOp::Neg => gr.unary(UnaryOp::Neg, g)?,
        UnaryOp::Exp => gr.mul(g, out)?,
        UnaryOp::Log => gr.div(g, x)?,
        UnaryOp::Sqrt => {
            let t = gr.div(g, out)?;
            gr.scale(t, 0.5)?
        }
        UnaryOp::Abs => {
            let s = gr.unary(UnaryOp::Sign, x)?;
            gr.mul(g, s)?
        }
        UnaryOp::Relu => {
            // relu(x) > 0 exactly where x > 0: reading the output, which the
            // next layer keeps anyway, spares storing the pre-activation.
            let s = gr.unary(UnaryOp::Step, out)?;
            gr.mul(g, s)?
        }
        UnaryOp::LeakyRelu(alpha) => {
            // slope 1 where x > 0, alpha elsewhere
            let s = gr.unary(UnaryOp::Step, x)?;
            let s = gr.scale(s, 1.0 - alpha)?;
            let s = gr.unary(UnaryOp::AddScalar(alpha), s)?;
            gr.mul(g, s)?
        }
        UnaryOp::Sigmoid => {
            // g · y · (1 - y)
            let one_minus = gr.unary(UnaryOp::Scale(-1.0), out)?;
            let one_minus = gr.unary(UnaryOp::AddScalar(1.0), one_minus)?;
            let t = gr.mul(out, one_minus)?;
            gr.mul(g, t)?
        }
        UnaryOp::Silu => {
            // g · s · (1 + x · (1 - s)), s = sigmoid(x)
            let s = gr.unary(UnaryOp::Sigmoid, x)?;
            let one_minus = gr.unary(UnaryOp::Scale(-1.0), s)?;
            let one_minus = gr.unary(UnaryOp::AddScalar(1.0), one_minus)?;
            let t = gr.mul(x, one_minus)?;
            let t = gr.unary(UnaryOp::AddScalar(1.0), t)?;
            let d = gr.mul(s, t)?;
            gr.mul(g, d)?
        }
        UnaryOp::Tanh => {
            // g · (1 - y²)
            let y2 = gr.unary(UnaryOp::Square, out)?;
            let d = gr.scale(y2, -1.0)?;
            let d = gr.unary(UnaryOp::AddScalar(1.0), d)?;
            gr.mul(g, d)?
        }
        UnaryOp::Recip => {
            let y2 = gr.unary(UnaryOp::Square, out)?;
            let t = gr.mul(g, y2)?;
            gr.unary(UnaryOp::Neg, t)?
        }
        UnaryOp::Square => {
            let t = gr.mul(g, x)?;
            gr.scale(t, 2.0)?
        }
        UnaryOp::Sign | UnaryOp::Step | UnaryOp::Floor => return Ok(None),
        UnaryOp::HardSigmoid => gr.binary(BinaryOp::HardSigmoidGrad, x, g)?,
        UnaryOp::Scale(s) => gr.scale(g, s)?,
        UnaryOp::PowScalar(p) => {
            let t = gr.unary(UnaryOp::PowScalar(p - 1.0), x)?;
            let t = gr.scale(t, p)?;
            gr.mul(g, t)?
        }
        UnaryOp::Rsqrt => {
            // -0.5 · g · y³
            let y3 = gr.unary(UnaryOp::PowScalar(3.0), out)?;
            let t = gr.mul(g, y3)?;
            gr.scale(t, -0.5)?
        }
    };
    Ok(Some(v))
}
