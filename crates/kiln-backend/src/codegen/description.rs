//! What a kernel computes, as a value: one [`KernelDescription`] variant per
//! kernel kind, each carrying everything its kernel needs (the program,
//! the buffers and layouts it reads and writes, its geometry). A
//! description says nothing of the kernel's shape: rendering it for a
//! [`KernelProfile`] picks the shape (tile sizes, vector widths, lane
//! sharing), through one trait, `Render`, that each kind implements next
//! to its generator. [`Device::build`] turns a description into a
//! [`Kernel`], and [`KernelDescription::source`] shows the text it would
//! compile.
//!
//! Adding a kernel kind is a variant here and a `Render` implementation
//! beside its generator.

use crate::error::Result;
use crate::kernel::{Generated, KernelBinding};
use crate::shaders::ShaderId;
use crate::{Buffer, Device, Kernel, KernelProfile, StridedLayout};

use super::conv::ConvKernel;
use super::elementwise::{ConcatKernel, MapKernel};
use super::gemm::GemmKernel;
use super::pool::PoolKernel;
use super::reduction::ReduceKernel;
use super::{Expr, Operand, Program, Store};
use crate::ops::optim::UpdateKernel;
use crate::ops::softmax::SoftmaxKernel;

/// A program applied at every element of a kernel's iteration space: what it
/// reads (operands, the program's `Load(k)`) and what it stores. For
/// products and convolutions it is the epilogue of each product element
/// ([`Expr::Anchor`](super::Expr::Anchor)).
#[derive(Clone, Debug, Default)]
pub struct Epilogue {
    pub program: Program,
    pub operands: Vec<Operand>,
    pub stores: Vec<Store>,
}

impl Epilogue {
    /// The product itself stored contiguously over `shape` into `out`: the
    /// epilogue of a plain matrix product or convolution.
    pub fn anchor_into(out: &Buffer, shape: &[usize]) -> Self {
        let mut program = Program::default();
        let product = program.push(Expr::Anchor);
        Epilogue {
            program,
            operands: vec![],
            stores: vec![Store {
                expr: product,
                buffer: out.clone(),
                layout: StridedLayout::contiguous(shape),
            }],
        }
    }
}

/// One kernel, described: see the module docs.
#[derive(Clone, Debug)]
pub enum KernelDescription {
    /// Elementwise programs over one or more iteration spaces.
    Map(MapKernel),
    /// Sums, means, extrema and batch moments over some axes.
    Reduce(ReduceKernel),
    /// A batched matrix product with an epilogue.
    Gemm(GemmKernel),
    /// A pass of a 2-D convolution as an implicit GEMM with an epilogue.
    Conv(ConvKernel),
    /// Max or average pooling, or its gradient.
    Pool(PoolKernel),
    /// Softmax or log-softmax along one axis.
    Softmax(SoftmaxKernel),
    /// Tensors copied into regions of one output.
    Concat(ConcatKernel),
    /// One optimizer step over several parameters.
    Update(UpdateKernel),
}

/// What rendering a description yields: a generated module, or a call of a
/// handwritten shader.
pub(crate) enum Rendered<'a> {
    Generated(Generated),
    Handwritten(HandwrittenCall<'a>),
}

/// A dispatch of a handwritten shader: its constants, bindings, parameter
/// words and workgroup count (folded as [`Device::linear_grid`] folds).
pub(crate) struct HandwrittenCall<'a> {
    pub shader: ShaderId,
    pub entry: &'static str,
    pub constants: Vec<(&'static str, f64)>,
    pub bindings: Vec<KernelBinding<'a>>,
    pub meta_binding: u32,
    pub meta: Vec<u32>,
    pub workgroups: u64,
}

/// How a kernel kind becomes code for a profile.
pub(crate) trait Render {
    fn render(&self, profile: &KernelProfile) -> Result<Rendered<'_>>;
}

impl KernelDescription {
    fn as_render(&self) -> &dyn Render {
        match self {
            KernelDescription::Map(k) => k,
            KernelDescription::Reduce(k) => k,
            KernelDescription::Gemm(k) => k,
            KernelDescription::Conv(k) => k,
            KernelDescription::Pool(k) => k,
            KernelDescription::Softmax(k) => k,
            KernelDescription::Concat(k) => k,
            KernelDescription::Update(k) => k,
        }
    }

    /// The WGSL the description compiles to on a device of `profile`
    /// (without the shared prelude), or `None` for a handwritten shader.
    pub fn source(&self, profile: &KernelProfile) -> Result<Option<String>> {
        Ok(match self.as_render().render(profile)? {
            Rendered::Generated(g) => Some(g.source),
            Rendered::Handwritten(_) => None,
        })
    }
}

impl Device {
    /// Builds the kernel a description describes, shaped for this device's
    /// [`KernelProfile`].
    ///
    /// ```no_run
    /// # use kiln_backend::*;
    /// # use kiln_backend::codegen::*;
    /// let device = Device::auto()?;
    /// let x = Tensor::from_f32(&device, &[-1.0, 2.0, -3.0, 4.0], &[2, 2])?;
    /// let b = Tensor::from_f32(&device, &[10.0, 20.0], &[2])?;
    /// let out = Tensor::empty(&device, &[2, 2], DType::F32)?;
    /// let mut p = Program::default();
    /// let (x0, b0) = (p.push(Expr::Load(0)), p.push(Expr::Load(1)));
    /// let s = p.push(Expr::Binary(BinaryOp::Add, x0, b0));
    /// let r = p.push(Expr::Unary(UnaryOp::Relu, s));
    /// let bias = StridedLayout::contiguous(&[2]).broadcast_to("bias", &[2, 2])?;
    /// let add_relu = MapKernel::over("add+relu", &[2, 2], Epilogue {
    ///     program: p,
    ///     operands: vec![
    ///         Operand { buffer: x.buffer().clone(), layout: StridedLayout::contiguous(&[2, 2]) },
    ///         Operand { buffer: b.buffer().clone(), layout: bias },
    ///     ],
    ///     stores: vec![Store { expr: r, buffer: out.buffer().clone(), layout: StridedLayout::contiguous(&[2, 2]) }],
    /// });
    /// let k = device.build(&add_relu.into())?;
    /// device.run(&[&k])?;
    /// assert_eq!(out.to_vec_f32()?, vec![9.0, 22.0, 7.0, 24.0]);
    /// # Ok::<(), BackendError>(())
    /// ```
    pub fn build(&self, description: &KernelDescription) -> Result<Kernel> {
        match description.as_render().render(self.kernel_profile())? {
            Rendered::Generated(g) => self.generated_kernel(g),
            Rendered::Handwritten(call) => {
                let grid = self.linear_grid(call.workgroups)?;
                self.kernel(
                    call.shader,
                    call.entry,
                    &call.constants,
                    &call.bindings,
                    call.meta_binding,
                    &call.meta,
                    grid,
                )
            }
        }
    }
}

macro_rules! kind_into_description {
    ($($kind:ident => $variant:ident),* $(,)?) => {$(
        impl From<$kind> for KernelDescription {
            fn from(k: $kind) -> Self {
                KernelDescription::$variant(k)
            }
        }
    )*};
}

kind_into_description!(
    MapKernel => Map,
    ReduceKernel => Reduce,
    GemmKernel => Gemm,
    ConvKernel => Conv,
    PoolKernel => Pool,
    SoftmaxKernel => Softmax,
    ConcatKernel => Concat,
    UpdateKernel => Update,
);
