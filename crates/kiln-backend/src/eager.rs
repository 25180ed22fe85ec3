//! The eager tensor API: each call builds its kernel, submits it and returns a
//! new tensor. Convenient for tests and small jobs; training goes through the
//! graph's compiled plans instead.

use crate::error::{shape_error, Result};
use crate::layout::{broadcast_shapes, StridedLayout};
use crate::ops::elementwise::{binary_kernel, fill_kernel, select_kernel, unary_kernel, Operand};
use crate::ops::matmul::{matmul_kernel, MatmulBias, MatmulOperand, MatmulSpec};
use crate::ops::random::{random_kernel, Distribution};
use crate::ops::reduce::{argmax_kernel, reduce_kernel};
use crate::ops::softmax::softmax_kernel;
use crate::{Activation, BinaryOp, DType, Device, MatmulVariant, ReduceOp, Tensor, UnaryOp};

fn operand(t: &Tensor) -> Operand<'_> {
    Operand {
        buffer: t.buffer(),
        layout: StridedLayout::contiguous(t.shape()),
    }
}

fn broadcast_operand<'a>(op: &str, t: &'a Tensor, shape: &[usize]) -> Result<Operand<'a>> {
    Ok(Operand {
        buffer: t.buffer(),
        layout: StridedLayout::contiguous(t.shape()).broadcast_to(op, shape)?,
    })
}

fn f32_input(op: &str, t: &Tensor) -> Result<()> {
    t.expect_dtype(op, DType::F32)
}

/// Options of [`Device::matmul`] beyond the two operands.
#[derive(Clone, Debug)]
pub struct MatmulOptions<'a> {
    pub trans_a: bool,
    pub trans_b: bool,
    /// Broadcast to the M×N output: shape `[N]`, `[1, N]`, `[M, 1]` or `[M, N]`.
    pub bias: Option<&'a Tensor>,
    pub activation: Activation,
    pub variant: MatmulVariant,
}

impl Default for MatmulOptions<'_> {
    fn default() -> Self {
        Self {
            trans_a: false,
            trans_b: false,
            bias: None,
            activation: Activation::None,
            variant: MatmulVariant::Auto,
        }
    }
}

impl Device {
    /// `op(x)` elementwise.
    pub fn unary(&self, op: UnaryOp, x: &Tensor) -> Result<Tensor> {
        f32_input("unary", x)?;
        let out = Tensor::empty(self, x.shape(), DType::F32)?;
        let k = unary_kernel(self, op, out.buffer(), 0, operand(x))?;
        self.run(&[&k])?;
        Ok(out)
    }

    /// `op(a, b)` with NumPy broadcasting.
    pub fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        f32_input("binary", a)?;
        f32_input("binary", b)?;
        let name = format!("{op:?}");
        let shape = broadcast_shapes(&name, a.shape(), b.shape())?;
        let out = Tensor::empty(self, &shape, DType::F32)?;
        let k = binary_kernel(
            self,
            op,
            out.buffer(),
            0,
            broadcast_operand(&name, a, &shape)?,
            broadcast_operand(&name, b, &shape)?,
        )?;
        self.run(&[&k])?;
        Ok(out)
    }

    /// `cond != 0 ? a : b`, broadcasting all three.
    pub fn select(&self, cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        for t in [cond, a, b] {
            f32_input("select", t)?;
        }
        let shape = broadcast_shapes(
            "select",
            &broadcast_shapes("select", cond.shape(), a.shape())?,
            b.shape(),
        )?;
        let out = Tensor::empty(self, &shape, DType::F32)?;
        let k = select_kernel(
            self,
            out.buffer(),
            0,
            broadcast_operand("select", cond, &shape)?,
            broadcast_operand("select", a, &shape)?,
            broadcast_operand("select", b, &shape)?,
        )?;
        self.run(&[&k])?;
        Ok(out)
    }

    /// A tensor of `shape` filled with `value`.
    pub fn full(&self, shape: &[usize], value: f32) -> Result<Tensor> {
        let out = Tensor::empty(self, shape, DType::F32)?;
        let k = fill_kernel(self, out.buffer(), 0, out.numel(), value)?;
        self.run(&[&k])?;
        Ok(out)
    }

    /// Axes reordered: axis `i` of the result is axis `perm[i]` of `x` (a
    /// strided copy).
    pub fn permute(&self, x: &Tensor, perm: &[usize]) -> Result<Tensor> {
        self.strided_copy(
            x,
            StridedLayout::contiguous(x.shape()).permuted("permute", perm)?,
        )
    }

    /// Copies the elements `layout` describes (any offset and strides into
    /// `x`'s buffer) into a new contiguous tensor.
    pub fn strided_copy(&self, x: &Tensor, layout: StridedLayout) -> Result<Tensor> {
        let out = Tensor::empty(self, &layout.shape, x.dtype())?;
        let k = unary_kernel(
            self,
            UnaryOp::Identity,
            out.buffer(),
            0,
            Operand {
                buffer: x.buffer(),
                layout,
            },
        )?;
        self.run(&[&k])?;
        Ok(out)
    }

    /// Reduces over `axes`; with `keepdims` the reduced axes stay as size 1.
    pub fn reduce(
        &self,
        op: ReduceOp,
        x: &Tensor,
        axes: &[usize],
        keepdims: bool,
    ) -> Result<Tensor> {
        f32_input("reduce", x)?;
        let shape = reduced_shape(x.shape(), axes, keepdims);
        let out = Tensor::empty(self, &shape, DType::F32)?;
        let k = reduce_kernel(self, op, out.buffer(), 0, operand(x), axes)?;
        self.run(&[&k])?;
        Ok(out)
    }

    /// Index of the first maximum along `axis`, as i32.
    pub fn argmax(&self, x: &Tensor, axis: usize, keepdims: bool) -> Result<Tensor> {
        f32_input("argmax", x)?;
        let shape = reduced_shape(x.shape(), &[axis], keepdims);
        let out = Tensor::empty(self, &shape, DType::I32)?;
        let k = argmax_kernel(self, out.buffer(), 0, operand(x), &[axis])?;
        self.run(&[&k])?;
        Ok(out)
    }

    /// Softmax along `axis` (log-softmax when `log`).
    pub fn softmax(&self, x: &Tensor, axis: usize, log: bool) -> Result<Tensor> {
        f32_input("softmax", x)?;
        let out = Tensor::empty(self, x.shape(), DType::F32)?;
        let k = softmax_kernel(self, out.buffer(), x.buffer(), x.shape(), axis, log)?;
        self.run(&[&k])?;
        Ok(out)
    }

    /// Uniform random numbers on `[low, high)` drawn under `seed`.
    pub fn rand_uniform(&self, shape: &[usize], seed: u64, low: f32, high: f32) -> Result<Tensor> {
        self.random(shape, seed, Distribution::Uniform { low, high })
    }

    /// Normal random numbers drawn under `seed`.
    pub fn rand_normal(&self, shape: &[usize], seed: u64, mean: f32, std: f32) -> Result<Tensor> {
        self.random(shape, seed, Distribution::Normal { mean, std })
    }

    fn random(&self, shape: &[usize], seed: u64, dist: Distribution) -> Result<Tensor> {
        let out = Tensor::empty(self, shape, DType::F32)?;
        let k = random_kernel(self, out.buffer(), out.numel(), seed, dist)?;
        self.run(&[&k])?;
        Ok(out)
    }

    /// Matrix product of `[.., M, K]` and `[.., K, N]` (after the optional
    /// transposes of the last two axes), batched over equal leading axes.
    ///
    /// ```no_run
    /// # use kiln_backend::*;
    /// # let device = Device::auto()?;
    /// let a = Tensor::from_f32(&device, &[1., 2., 3., 4.], &[2, 2])?;
    /// let c = device.matmul(&a, &a, &Default::default())?;
    /// assert_eq!(c.to_vec_f32()?, vec![7., 10., 15., 22.]);
    /// # Ok::<(), BackendError>(())
    /// ```
    pub fn matmul(&self, a: &Tensor, b: &Tensor, opts: &MatmulOptions<'_>) -> Result<Tensor> {
        f32_input("matmul", a)?;
        f32_input("matmul", b)?;
        let (ar, br) = (a.shape().len(), b.shape().len());
        if ar < 2 || br < 2 || a.shape()[..ar - 2] != b.shape()[..br - 2] {
            return Err(shape_error(
                "matmul",
                format!(
                    "operands {:?} and {:?} need rank ≥ 2 and equal batch axes",
                    a.shape(),
                    b.shape()
                ),
            ));
        }
        let batch_shape = &a.shape()[..ar - 2];
        let batch: usize = batch_shape.iter().product();
        let (sa0, sa1) = (a.shape()[ar - 2], a.shape()[ar - 1]);
        let (sb0, sb1) = (b.shape()[br - 2], b.shape()[br - 1]);
        let (m, ka) = if opts.trans_a { (sa1, sa0) } else { (sa0, sa1) };
        let (kb, n) = if opts.trans_b { (sb1, sb0) } else { (sb0, sb1) };
        if ka != kb {
            return Err(shape_error(
                "matmul",
                format!(
                    "inner dimensions differ: {:?}{} · {:?}{} gives K = {ka} vs {kb}",
                    a.shape(),
                    if opts.trans_a { "ᵀ" } else { "" },
                    b.shape(),
                    if opts.trans_b { "ᵀ" } else { "" }
                ),
            ));
        }
        let mut out_shape = batch_shape.to_vec();
        out_shape.extend([m, n]);
        let out = Tensor::empty(self, &out_shape, DType::F32)?;
        let bias = match opts.bias {
            None => None,
            Some(t) => {
                f32_input("matmul bias", t)?;
                let l =
                    StridedLayout::contiguous(t.shape()).broadcast_to("matmul bias", &[m, n])?;
                Some(MatmulBias {
                    buffer: t.buffer(),
                    offset: 0,
                    row_stride: l.strides[0],
                    col_stride: l.strides[1],
                    batch_stride: 0,
                })
            }
        };
        let spec = MatmulSpec {
            m,
            n,
            k: ka,
            batch,
            a: MatmulOperand {
                buffer: a.buffer(),
                offset: 0,
                row_stride: sa1,
                batch_stride: sa0 * sa1,
            },
            b: MatmulOperand {
                buffer: b.buffer(),
                offset: 0,
                row_stride: sb1,
                batch_stride: sb0 * sb1,
            },
            c: MatmulOperand {
                buffer: out.buffer(),
                offset: 0,
                row_stride: n,
                batch_stride: m * n,
            },
            trans_a: opts.trans_a,
            trans_b: opts.trans_b,
            bias,
            alpha: 1.0,
            beta: 1.0,
            activation: opts.activation,
            variant: opts.variant,
        };
        let k = matmul_kernel(self, &spec)?;
        self.run(&[&k])?;
        Ok(out)
    }
}

/// The shape left after reducing `axes` of `shape`.
pub fn reduced_shape(shape: &[usize], axes: &[usize], keepdims: bool) -> Vec<usize> {
    shape
        .iter()
        .enumerate()
        .filter_map(|(d, &s)| match (axes.contains(&d), keepdims) {
            (false, _) => Some(s),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect()
}
