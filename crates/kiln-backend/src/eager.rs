//! The eager tensor API: each call builds its kernel, submits it and returns a
//! new tensor. Convenient for tests and small jobs; training goes through the
//! graph's compiled plans instead. Elementwise maps, reductions and products
//! are the generated kernels of [`crate::codegen`], with one-operation programs.

use crate::codegen::{
    Epilogue, Expr, GemmKernel, GemmLoad, GemmSpec, MapKernel, Operand, Program, ReduceKernel,
    ReduceKind, ReduceOutput, Reduction, SoftmaxKernel, Store,
};
use crate::error::{shape_error, Result};
use crate::layout::{broadcast_shapes, StridedLayout};
use crate::ops::random::{random_kernel, Distribution};
use crate::ops::reduce::argmax_kernel;
use crate::{BinaryOp, DType, Device, MatmulVariant, ReduceOp, Tensor, UnaryOp};

fn operand(t: &Tensor) -> Operand {
    Operand {
        buffer: t.buffer().clone(),
        layout: StridedLayout::contiguous(t.shape()),
    }
}

fn broadcast_operand(op: &str, t: &Tensor, shape: &[usize]) -> Result<Operand> {
    Ok(Operand {
        buffer: t.buffer().clone(),
        layout: StridedLayout::contiguous(t.shape()).broadcast_to(op, shape)?,
    })
}

fn f32_input(op: &str, t: &Tensor) -> Result<()> {
    t.expect_dtype(op, DType::F32)
}

/// Options of [`Device::matmul`] beyond the two operands.
#[derive(Clone, Debug, Default)]
pub struct MatmulOptions {
    pub trans_a: bool,
    pub trans_b: bool,
    pub variant: MatmulVariant,
}

impl Device {
    /// Runs `program` over `shape` into a new tensor (the program's last
    /// expression is stored).
    fn map(
        &self,
        label: &str,
        shape: &[usize],
        program: &Program,
        operands: &[Operand],
    ) -> Result<Tensor> {
        let out = Tensor::empty(self, shape, DType::F32)?;
        if out.numel() == 0 {
            return Ok(out);
        }
        let store = Store {
            expr: program.exprs.len() - 1,
            buffer: out.buffer().clone(),
            layout: StridedLayout::contiguous(shape),
        };
        let epilogue = Epilogue {
            program: program.clone(),
            operands: operands.to_vec(),
            stores: vec![store],
        };
        let k = self.build(&MapKernel::over(label, shape, epilogue).into())?;
        self.run(&[&k])?;
        Ok(out)
    }

    /// `op(x)` elementwise.
    pub fn unary(&self, op: UnaryOp, x: &Tensor) -> Result<Tensor> {
        f32_input("unary", x)?;
        let mut p = Program::default();
        let a = p.push(Expr::Load(0));
        p.push(Expr::Unary(op, a));
        self.map(op.name(), x.shape(), &p, &[operand(x)])
    }

    /// `op(a, b)` with NumPy broadcasting.
    pub fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        f32_input("binary", a)?;
        f32_input("binary", b)?;
        let name = format!("{op:?}");
        let shape = broadcast_shapes(&name, a.shape(), b.shape())?;
        let mut p = Program::default();
        let (x, y) = (p.push(Expr::Load(0)), p.push(Expr::Load(1)));
        p.push(Expr::Binary(op, x, y));
        self.map(
            op.name(),
            &shape,
            &p,
            &[
                broadcast_operand(&name, a, &shape)?,
                broadcast_operand(&name, b, &shape)?,
            ],
        )
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
        let mut p = Program::default();
        let (c, x, y) = (
            p.push(Expr::Load(0)),
            p.push(Expr::Load(1)),
            p.push(Expr::Load(2)),
        );
        p.push(Expr::Select(c, x, y));
        self.map(
            "select",
            &shape,
            &p,
            &[
                broadcast_operand("select", cond, &shape)?,
                broadcast_operand("select", a, &shape)?,
                broadcast_operand("select", b, &shape)?,
            ],
        )
    }

    /// A tensor of `shape` filled with `value`.
    pub fn full(&self, shape: &[usize], value: f32) -> Result<Tensor> {
        let mut p = Program::default();
        p.push(Expr::Scalar(value));
        self.map("fill", shape, &p, &[])
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
        f32_input("strided copy", x)?;
        let mut p = Program::default();
        p.push(Expr::Load(0));
        let shape = layout.shape.clone();
        self.map(
            "copy",
            &shape,
            &p,
            &[Operand {
                buffer: x.buffer().clone(),
                layout,
            }],
        )
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
        let mut sorted = axes.to_vec();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) || sorted.iter().any(|&a| a >= x.shape().len()) {
            return Err(shape_error(
                "reduce",
                format!("axes {axes:?} must be distinct axes of {:?}", x.shape()),
            ));
        }
        let shape = reduced_shape(x.shape(), &sorted, keepdims);
        let out = Tensor::empty(self, &shape, DType::F32)?;
        if out.numel() == 0 {
            return Ok(out);
        }
        let mut p = Program::default();
        let v = p.push(Expr::Load(0));
        let kind = match op {
            ReduceOp::Sum => ReduceKind::Sum,
            ReduceOp::Mean => ReduceKind::Mean,
            ReduceOp::Max => ReduceKind::Max,
            ReduceOp::Min => ReduceKind::Min,
        };
        let reduce = ReduceKernel {
            label: "reduce".into(),
            shape: x.shape().to_vec(),
            axes: sorted,
            reductions: vec![Reduction {
                kind,
                expr: v,
                output: ReduceOutput::Write {
                    buffer: out.buffer().clone(),
                    offset: 0,
                },
            }],
            epilogue: Epilogue {
                program: p,
                operands: vec![operand(x)],
                stores: vec![],
            },
        };
        let k = self.build(&reduce.into())?;
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
        let softmax = SoftmaxKernel {
            out: out.buffer().clone(),
            x: x.buffer().clone(),
            shape: x.shape().to_vec(),
            axis,
            log,
        };
        let k = self.build(&softmax.into())?;
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
    pub fn matmul(&self, a: &Tensor, b: &Tensor, opts: &MatmulOptions) -> Result<Tensor> {
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
        let spec = GemmSpec {
            m,
            n,
            k: ka,
            shape: out_shape.clone(),
            a: GemmLoad {
                buffer: a.buffer().clone(),
                offset: 0,
                row_stride: sa1,
                batch_stride: sa0 * sa1,
                transposed: opts.trans_a,
            },
            b: GemmLoad {
                buffer: b.buffer().clone(),
                offset: 0,
                row_stride: sb1,
                batch_stride: sb0 * sb1,
                transposed: opts.trans_b,
            },
            variant: opts.variant,
        };
        let gemm = GemmKernel {
            label: "matmul".into(),
            spec,
            epilogue: Epilogue::anchor_into(out.buffer(), &out_shape),
        };
        let k = self.build(&gemm.into())?;
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
