//! [`Var`]: a handle on a graph node that knows its tape and shape, with a
//! method for every graph op and the arithmetic operators, so model code
//! reads like PyTorch's: `(x.matmul(&w)? + &b)?.relu()`.

use std::ops::{Add, Div, Mul, Sub};

use kiln_backend::{BinaryOp, ReduceOp, UnaryOp};

use crate::error::{GraphError, Result};
use crate::graph::{Graph, NodeId};
use crate::tape::Tape;
use crate::window::Window2d;

/// A value in a graph under construction.
#[derive(Clone)]
pub struct Var {
    tape: Tape,
    id: NodeId,
    shape: Vec<usize>,
}

impl std::fmt::Debug for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Var(node {} {:?})", self.id.index(), self.shape)
    }
}

impl Var {
    pub(crate) fn new(tape: Tape, id: NodeId, shape: Vec<usize>) -> Self {
        Self { tape, id, shape }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The node this var names.
    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn tape(&self) -> &Tape {
        &self.tape
    }

    /// A new var from a graph operation on this var's graph.
    pub fn apply(&self, f: impl FnOnce(&mut Graph, NodeId) -> Result<NodeId>) -> Result<Var> {
        let id = self.tape.with_graph(|g| f(g, self.id))?;
        self.tape.var(id)
    }

    /// Like [`Var::apply`] with a second var, which must share the tape.
    pub fn apply2(
        &self,
        other: &Var,
        f: impl FnOnce(&mut Graph, NodeId, NodeId) -> Result<NodeId>,
    ) -> Result<Var> {
        self.same_tape(other)?;
        let id = self.tape.with_graph(|g| f(g, self.id, other.id))?;
        self.tape.var(id)
    }

    /// An error unless `other` is a value of this var's tape.
    pub fn same_tape(&self, other: &Var) -> Result<()> {
        if self.tape.same(&other.tape) {
            Ok(())
        } else {
            Err(GraphError::WrongGraph(format!(
                "{self:?} and {other:?} belong to different graphs"
            )))
        }
    }

    pub fn unary(&self, op: UnaryOp) -> Result<Var> {
        self.apply(|g, x| g.unary(op, x))
    }

    pub fn binary(&self, op: BinaryOp, other: &Var) -> Result<Var> {
        self.apply2(other, |g, a, b| g.binary(op, a, b))
    }

    pub fn relu(&self) -> Result<Var> {
        self.unary(UnaryOp::Relu)
    }

    pub fn sigmoid(&self) -> Result<Var> {
        self.unary(UnaryOp::Sigmoid)
    }

    pub fn tanh(&self) -> Result<Var> {
        self.unary(UnaryOp::Tanh)
    }

    pub fn hard_sigmoid(&self) -> Result<Var> {
        self.unary(UnaryOp::HardSigmoid)
    }

    /// `x · sigmoid(x)`, PyTorch's `nn.SiLU` and Keras' `silu`.
    pub fn silu(&self) -> Result<Var> {
        self.unary(UnaryOp::Silu)
    }

    pub fn leaky_relu(&self, slope: f32) -> Result<Var> {
        self.unary(UnaryOp::LeakyRelu(slope))
    }

    pub fn exp(&self) -> Result<Var> {
        self.unary(UnaryOp::Exp)
    }

    pub fn log(&self) -> Result<Var> {
        self.unary(UnaryOp::Log)
    }

    pub fn sqrt(&self) -> Result<Var> {
        self.unary(UnaryOp::Sqrt)
    }

    pub fn rsqrt(&self) -> Result<Var> {
        self.unary(UnaryOp::Rsqrt)
    }

    pub fn abs(&self) -> Result<Var> {
        self.unary(UnaryOp::Abs)
    }

    pub fn neg(&self) -> Result<Var> {
        self.unary(UnaryOp::Neg)
    }

    pub fn square(&self) -> Result<Var> {
        self.unary(UnaryOp::Square)
    }

    pub fn powf(&self, p: f32) -> Result<Var> {
        self.unary(UnaryOp::PowScalar(p))
    }

    /// `self · s`.
    pub fn scale(&self, s: f32) -> Result<Var> {
        self.unary(UnaryOp::Scale(s))
    }

    /// `self + s`.
    pub fn add_scalar(&self, s: f32) -> Result<Var> {
        self.unary(UnaryOp::AddScalar(s))
    }

    pub fn maximum(&self, other: &Var) -> Result<Var> {
        self.binary(BinaryOp::Max, other)
    }

    pub fn minimum(&self, other: &Var) -> Result<Var> {
        self.binary(BinaryOp::Min, other)
    }

    pub fn pow(&self, other: &Var) -> Result<Var> {
        self.binary(BinaryOp::Pow, other)
    }

    /// 1 where `self > other`, else 0.
    pub fn gt(&self, other: &Var) -> Result<Var> {
        self.binary(BinaryOp::Gt, other)
    }

    /// 1 where `self < other`, else 0.
    pub fn lt(&self, other: &Var) -> Result<Var> {
        self.binary(BinaryOp::Lt, other)
    }

    /// 1 where `self == other`, else 0.
    pub fn equal(&self, other: &Var) -> Result<Var> {
        self.binary(BinaryOp::Eq, other)
    }

    /// `self != 0 ? a : b`, broadcasting all three.
    pub fn select(&self, a: &Var, b: &Var) -> Result<Var> {
        self.same_tape(a)?;
        self.same_tape(b)?;
        let id = self.tape.with_graph(|g| g.select(self.id, a.id, b.id))?;
        self.tape.var(id)
    }

    /// The matrix product (NumPy `matmul` semantics).
    pub fn matmul(&self, other: &Var) -> Result<Var> {
        self.apply2(other, |g, a, b| g.matmul(a, b, false, false))
    }

    /// `op(self)·op(other)`, the transposes of the last two axes read through
    /// strides, never copied.
    pub fn matmul_t(&self, other: &Var, trans_self: bool, trans_other: bool) -> Result<Var> {
        self.apply2(other, |g, a, b| g.matmul(a, b, trans_self, trans_other))
    }

    /// Reshape; one `-1` is inferred.
    /// 2-D convolution by the weight `w` (`[Cout, Cin, KH, KW]`); see
    /// [`Graph::conv2d`].
    pub fn conv2d(&self, w: &Var, window: Window2d) -> Result<Var> {
        self.apply2(w, |g, x, w| g.conv2d(x, w, window))
    }

    /// Max pooling; see [`Graph::max_pool2d`].
    pub fn max_pool2d(&self, window: Window2d, ceil_mode: bool) -> Result<Var> {
        self.apply(|g, x| g.max_pool2d(x, window, ceil_mode))
    }

    /// Max pooling's maxima and their indices; see
    /// [`Graph::max_pool2d_with_indices`].
    pub fn max_pool2d_with_indices(&self, window: Window2d, ceil_mode: bool) -> Result<(Var, Var)> {
        let (v, i) = self
            .tape
            .with_graph(|g| g.max_pool2d_with_indices(self.id, window, ceil_mode))?;
        Ok((self.tape.var(v)?, self.tape.var(i)?))
    }

    /// Average pooling; see [`Graph::avg_pool2d`].
    pub fn avg_pool2d(
        &self,
        window: Window2d,
        ceil_mode: bool,
        count_include_pad: bool,
    ) -> Result<Var> {
        self.apply(|g, x| g.avg_pool2d(x, window, ceil_mode, count_include_pad))
    }

    pub fn reshape(&self, shape: &[i64]) -> Result<Var> {
        self.apply(|g, x| g.reshape(x, shape))
    }

    /// Axes `start..` collapsed into one (PyTorch's `flatten(start)`).
    pub fn flatten(&self, start: usize) -> Result<Var> {
        if start > self.rank() {
            return Err(GraphError::Shape {
                op: "flatten".into(),
                detail: format!("start axis {start} is out of range for {:?}", self.shape),
            });
        }
        let mut shape: Vec<i64> = self.shape[..start].iter().map(|&d| d as i64).collect();
        shape.push(self.shape[start..].iter().product::<usize>() as i64);
        self.reshape(&shape)
    }

    /// Axes reordered: axis `i` of the result is axis `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Result<Var> {
        self.apply(|g, x| g.permute(x, perm))
    }

    /// The last two axes swapped.
    pub fn t(&self) -> Result<Var> {
        let r = self.rank();
        if r < 2 {
            return Err(GraphError::Shape {
                op: "transpose".into(),
                detail: format!("{:?} has fewer than two axes", self.shape),
            });
        }
        let mut perm: Vec<usize> = (0..r).collect();
        perm.swap(r - 2, r - 1);
        self.permute(&perm)
    }

    pub fn expand(&self, shape: &[usize]) -> Result<Var> {
        self.apply(|g, x| g.expand(x, shape))
    }

    /// Elements `start..end` along `axis`.
    pub fn slice(&self, axis: usize, start: usize, end: usize) -> Result<Var> {
        self.apply(|g, x| g.slice(x, axis, start, end))
    }

    /// `vars` joined along `axis`.
    pub fn concat(vars: &[&Var], axis: i64) -> Result<Var> {
        let Some(first) = vars.first() else {
            return Err(GraphError::Shape {
                op: "Concat".into(),
                detail: "needs at least one input".into(),
            });
        };
        for v in &vars[1..] {
            first.same_tape(v)?;
        }
        let ids: Vec<NodeId> = vars.iter().map(|v| v.id).collect();
        let id = first.tape.with_graph(|g| g.concat(&ids, axis))?;
        first.tape.var(id)
    }

    pub fn reduce(&self, op: ReduceOp, axes: &[i64], keepdims: bool) -> Result<Var> {
        self.apply(|g, x| g.reduce(op, x, axes, keepdims))
    }

    pub fn sum(&self, axes: &[i64], keepdims: bool) -> Result<Var> {
        self.reduce(ReduceOp::Sum, axes, keepdims)
    }

    pub fn mean(&self, axes: &[i64], keepdims: bool) -> Result<Var> {
        self.reduce(ReduceOp::Mean, axes, keepdims)
    }

    pub fn max(&self, axes: &[i64], keepdims: bool) -> Result<Var> {
        self.reduce(ReduceOp::Max, axes, keepdims)
    }

    pub fn sum_all(&self) -> Result<Var> {
        self.apply(|g, x| g.sum_all(x))
    }

    pub fn mean_all(&self) -> Result<Var> {
        self.apply(|g, x| g.mean_all(x))
    }

    pub fn softmax(&self, axis: i64) -> Result<Var> {
        self.apply(|g, x| g.softmax(x, axis, false))
    }

    pub fn log_softmax(&self, axis: i64) -> Result<Var> {
        self.apply(|g, x| g.softmax(x, axis, true))
    }

    /// Mean and biased variance over `axes`.
    pub fn moments(&self, axes: &[i64]) -> Result<(Var, Var)> {
        let (m, v) = self.tape.with_graph(|g| g.moments(self.id, axes))?;
        Ok((self.tape.var(m)?, self.tape.var(v)?))
    }

    /// Dropout with `rate` under `seed` in a training graph (masks drawn
    /// from the tape's step counter); the identity in an evaluation graph
    /// or at rate 0.
    pub fn dropout(&self, rate: f32, seed: u64) -> Result<Var> {
        if !self.tape.training() || rate == 0.0 {
            if !(0.0..1.0).contains(&rate) {
                return Err(GraphError::Shape {
                    op: "Dropout".into(),
                    detail: format!("rate {rate} must be in [0, 1)"),
                });
            }
            return Ok(self.clone());
        }
        let step = self.tape.step();
        self.apply2(&step, |g, x, s| g.dropout(x, rate, seed, s))
    }

    /// Appends the gradient of this scalar with respect to every trainable
    /// parameter the graph reads (PyTorch's `loss.backward()`); read them
    /// with [`Tape::grad`].
    pub fn backward(&self) -> Result<()> {
        let params = self.tape.trainable_params();
        let nodes: Vec<NodeId> = params.iter().map(|(_, id)| *id).collect();
        let grads = self.tape.with_graph(|g| g.grad(self.id, &nodes))?;
        self.tape
            .set_grads(params.into_iter().map(|(p, _)| p).zip(grads).collect());
        Ok(())
    }
}

macro_rules! operator {
    ($trait:ident, $method:ident, $op:expr, $scalar:expr) => {
        impl $trait<&Var> for &Var {
            type Output = Result<Var>;
            fn $method(self, rhs: &Var) -> Result<Var> {
                self.binary($op, rhs)
            }
        }
        impl $trait<Var> for Var {
            type Output = Result<Var>;
            fn $method(self, rhs: Var) -> Result<Var> {
                self.binary($op, &rhs)
            }
        }
        impl $trait<f32> for &Var {
            type Output = Result<Var>;
            fn $method(self, rhs: f32) -> Result<Var> {
                #[allow(clippy::redundant_closure_call)]
                self.unary($scalar(rhs))
            }
        }
    };
}

operator!(Add, add, BinaryOp::Add, UnaryOp::AddScalar);
operator!(Sub, sub, BinaryOp::Sub, |s: f32| UnaryOp::AddScalar(-s));
operator!(Mul, mul, BinaryOp::Mul, UnaryOp::Scale);
operator!(Div, div, BinaryOp::Div, |s: f32| UnaryOp::Scale(1.0 / s));
