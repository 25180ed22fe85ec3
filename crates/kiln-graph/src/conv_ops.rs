//! Convolutions and pooling over NCHW tensors, PyTorch's layouts and
//! semantics: weights `[Cout, Cin, KH, KW]`, padding given per side (top,
//! left, bottom, right) so ONNX's asymmetric pads fit too. Each op's
//! gradient is its own op (the input and weight gradients of a
//! convolution, the gradient of a pooling), built here beside the forward
//! op; autodiff calls these builders.

use kiln_backend::codegen::{Conv2dGeometry, ConvPass, Pool2dGeometry, PoolKind};
use kiln_backend::UnaryOp;

use crate::error::{shape_err, Result};
use crate::graph::{Graph, NodeId, Op};
use crate::window::Window2d;

/// The geometry of a convolution of `x` (`[N, Cin, H, W]`) by `w`
/// (`[Cout, Cin, KH, KW]`) under `window`, checked.
pub(crate) fn conv_geometry(
    op: &str,
    x: &[usize],
    w: &[usize],
    window: &Window2d,
) -> Result<Conv2dGeometry> {
    window.check(op)?;
    if x.len() != 4 || w.len() != 4 {
        return Err(shape_err(
            op,
            format!(
                "input {x:?} and weight {w:?} must both be rank 4 (NCHW and [Cout, Cin, KH, KW])"
            ),
        ));
    }
    if x[1] != w[1] {
        return Err(shape_err(
            op,
            format!(
                "the input has {} channels; the weight {w:?} expects {}",
                x[1], w[1]
            ),
        ));
    }
    if window.kernel != [w[2], w[3]] {
        return Err(shape_err(
            op,
            format!("window {:?} for a weight {w:?}", window.kernel),
        ));
    }
    let g = Conv2dGeometry {
        batch: x[0],
        in_channels: x[1],
        out_channels: w[0],
        input: [x[2], x[3]],
        kernel: window.kernel,
        stride: window.stride,
        pad: window.pad,
        dilation: window.dilation,
    };
    if g.output().is_none() {
        return Err(shape_err(
            op,
            format!(
                "a {:?} kernel (dilation {:?}) does not fit a {:?} input padded by {:?}",
                window.kernel,
                window.dilation,
                [x[2], x[3]],
                window.pad
            ),
        ));
    }
    Ok(g)
}

/// The geometry of pooling `x` (`[N, C, H, W]`).
pub(crate) fn pool_geometry(
    op: &str,
    x: &[usize],
    window: &Window2d,
    ceil_mode: bool,
) -> Result<Pool2dGeometry> {
    window.check(op)?;
    if x.len() != 4 {
        return Err(shape_err(op, format!("input {x:?} must be rank 4 (NCHW)")));
    }
    let g = Pool2dGeometry {
        planes: x[0] * x[1],
        input: [x[2], x[3]],
        kernel: window.kernel,
        stride: window.stride,
        pad: window.pad,
        dilation: window.dilation,
        ceil_mode,
    };
    if g.output().is_none() {
        return Err(shape_err(
            op,
            format!(
                "a {:?} window (dilation {:?}) does not fit a {:?} input padded by {:?}",
                window.kernel,
                window.dilation,
                [x[2], x[3]],
                window.pad
            ),
        ));
    }
    Ok(g)
}

impl Graph {
    /// The 2-D convolution of `x` (`[N, Cin, H, W]`) by `w` (`[Cout, Cin,
    /// KH, KW]`), no bias (add one broadcast over `[1, Cout, 1, 1]`: the
    /// plan compiler adds it in the convolution's kernel). `window.kernel`
    /// must be the weight's `[KH, KW]`.
    ///
    /// ```
    /// # use kiln_graph::*;
    /// let mut g = Graph::new();
    /// let x = g.input("x", &[8, 3, 32, 32]);
    /// let w = g.input("w", &[16, 3, 3, 3]);
    /// let y = g.conv2d(x, w, Window2d::new([3, 3]).padding([1, 1]))?;
    /// assert_eq!(g.shape(y), &[8, 16, 32, 32]);
    /// # Ok::<(), GraphError>(())
    /// ```
    pub fn conv2d(&mut self, x: NodeId, w: NodeId, window: Window2d) -> Result<NodeId> {
        self.check("Conv2d", &[x, w])?;
        let g = conv_geometry("Conv2d", self.shape(x), self.shape(w), &window)?;
        let op = Op::Conv2d {
            pass: ConvPass::Forward,
            window,
            splits: 1,
        };
        Ok(self.push(op, vec![x, w], g.result_shape(ConvPass::Forward)))
    }

    /// The gradient of [`Graph::conv2d`] with respect to its input of height
    /// and width `input`, from the upstream gradient `dy`.
    pub(crate) fn conv2d_input_grad(
        &mut self,
        dy: NodeId,
        w: NodeId,
        window: Window2d,
        input: [usize; 2],
    ) -> Result<NodeId> {
        let (ds, ws) = (self.shape(dy).to_vec(), self.shape(w).to_vec());
        let x_shape = [ds[0], ws[1], input[0], input[1]];
        let g = conv_geometry("Conv2dGradInput", &x_shape, &ws, &window)?;
        let op = Op::Conv2d {
            pass: ConvPass::InputGrad,
            window,
            splits: 1,
        };
        Ok(self.push(op, vec![dy, w], g.result_shape(ConvPass::InputGrad)))
    }

    /// The gradient of [`Graph::conv2d`] with respect to its weight of shape
    /// `w_shape`: partial sums over groups of images (see
    /// `Conv2dGeometry::weight_grad_splits`), then their sum.
    pub(crate) fn conv2d_weight_grad(
        &mut self,
        dy: NodeId,
        x: NodeId,
        window: Window2d,
        w_shape: &[usize],
    ) -> Result<NodeId> {
        let xs = self.shape(x).to_vec();
        let g = conv_geometry("Conv2dGradWeight", &xs, w_shape, &window)?;
        let splits = g.weight_grad_splits();
        let op = Op::Conv2d {
            pass: ConvPass::WeightGrad,
            window,
            splits,
        };
        let shape = g.result_shape(ConvPass::WeightGrad);
        if splits == 1 {
            return Ok(self.push(op, vec![dy, x], shape));
        }
        let mut partial_shape = vec![splits];
        partial_shape.extend(&shape);
        let partial = self.push(op, vec![dy, x], partial_shape);
        self.sum(partial, &[0], false)
    }

    /// Max pooling of `x` (`[N, C, H, W]`), PyTorch's `max_pool2d`: padding
    /// never wins, the first maximum of a window is the one its gradient
    /// goes to, a NaN in a window is its maximum.
    ///
    /// Pooling a relu pools first and applies the relu to the pooled map:
    /// relu is monotone, so the maxima are the same, and so are the
    /// gradients (a window whose maximum is not positive passes none
    /// either way), while the relu and its gradient touch a map the
    /// window's size smaller (a quarter, for a CNN's 2×2 pooling).
    pub fn max_pool2d(&mut self, x: NodeId, window: Window2d, ceil_mode: bool) -> Result<NodeId> {
        if let (Op::Unary(UnaryOp::Relu), [pre]) =
            (&self.node(x).op, self.node(x).inputs.as_slice())
        {
            let pre = *pre;
            let pooled = self.max_pool2d_with_indices(pre, window, ceil_mode)?.0;
            return self.unary(UnaryOp::Relu, pooled);
        }
        Ok(self.max_pool2d_with_indices(x, window, ceil_mode)?.0)
    }

    /// [`Graph::max_pool2d`]'s maxima and where they are: the index `h·W +
    /// w` of each within its input plane, as exact floats (PyTorch's
    /// `return_indices=True`). The indices have no gradient.
    pub fn max_pool2d_with_indices(
        &mut self,
        x: NodeId,
        window: Window2d,
        ceil_mode: bool,
    ) -> Result<(NodeId, NodeId)> {
        let (op, shape) = self.pool2d_node(x, PoolKind::Max, window, ceil_mode)?;
        let r = self.push_multi(op, vec![x], vec![shape.clone(), shape]);
        Ok((r[0], r[1]))
    }

    /// Average pooling of `x` (`[N, C, H, W]`), PyTorch's `avg_pool2d`:
    /// with `count_include_pad` each window divides by its taps inside the
    /// padded input, otherwise by those inside the input.
    pub fn avg_pool2d(
        &mut self,
        x: NodeId,
        window: Window2d,
        ceil_mode: bool,
        count_include_pad: bool,
    ) -> Result<NodeId> {
        let kind = PoolKind::Average { count_include_pad };
        let (op, shape) = self.pool2d_node(x, kind, window, ceil_mode)?;
        Ok(self.push(op, vec![x], shape))
    }

    /// The op and output shape of a pooling of `x`.
    fn pool2d_node(
        &mut self,
        x: NodeId,
        kind: PoolKind,
        window: Window2d,
        ceil_mode: bool,
    ) -> Result<(Op, Vec<usize>)> {
        self.check("Pool2d", &[x])?;
        let xs = self.shape(x).to_vec();
        let g = pool_geometry("Pool2d", &xs, &window, ceil_mode)?;
        let [oh, ow] = g.output().expect("checked by pool_geometry");
        let op = Op::Pool2d {
            kind,
            window,
            ceil_mode,
        };
        Ok((op, vec![xs[0], xs[1], oh, ow]))
    }

    /// The gradient of a pooling of an input of `x_shape` from upstream
    /// `dy` (and, for max pooling, the forward pass's `indices`).
    pub(crate) fn pool2d_grad(
        &mut self,
        dy: NodeId,
        indices: Option<NodeId>,
        x_shape: &[usize],
        kind: PoolKind,
        window: Window2d,
        ceil_mode: bool,
    ) -> Result<NodeId> {
        let op = Op::Pool2dGrad {
            kind,
            window,
            ceil_mode,
        };
        let mut inputs = vec![dy];
        inputs.extend(indices);
        Ok(self.push(op, inputs, x_shape.to_vec()))
    }
}

/// The geometry of convolution node `i`, from its inputs' shapes and its
/// own (the input gradient's shape is the input's, the weight gradient's
/// ends with the weight's).
pub(crate) fn node_conv_geometry(graph: &Graph, i: usize) -> Result<Conv2dGeometry> {
    let node = &graph.nodes()[i];
    let Op::Conv2d { pass, window, .. } = &node.op else {
        return Err(crate::GraphError::Internal(format!(
            "internal: {} is no convolution",
            node.op.name()
        )));
    };
    let input = |k: usize| graph.shape(node.inputs[k]).to_vec();
    let (x, w) = match pass {
        ConvPass::Forward => (input(0), input(1)),
        ConvPass::InputGrad => (node.shape.clone(), input(1)),
        ConvPass::WeightGrad => (input(1), node.shape[node.shape.len() - 4..].to_vec()),
    };
    conv_geometry(&node.op.name(), &x, &w, window)
}

/// The geometry of pooling node `i` (forward or gradient).
pub(crate) fn node_pool_geometry(graph: &Graph, i: usize) -> Result<(PoolKind, Pool2dGeometry)> {
    let node = &graph.nodes()[i];
    let (kind, window, ceil_mode, x) = match &node.op {
        Op::Pool2d {
            kind,
            window,
            ceil_mode,
        } => (*kind, window, *ceil_mode, graph.shape(node.inputs[0])),
        Op::Pool2dGrad {
            kind,
            window,
            ceil_mode,
        } => (*kind, window, *ceil_mode, node.shape.as_slice()),
        other => {
            return Err(crate::GraphError::Internal(format!(
                "internal: {} is no pooling",
                other.name()
            )))
        }
    };
    Ok((kind, pool_geometry(&node.op.name(), x, window, ceil_mode)?))
}
