//! The generated reduction kernel: sums, means, extrema and batch moments of
//! a program's values over some axes of its iteration space. The program is
//! the prologue (what is reduced is computed as it is read, never stored);
//! elementwise results of the same iteration space can be stored on the way,
//! since each element is visited exactly once. Several reductions over the
//! same axes share the pass.
//!
//! Two strategies, chosen by shape: one invocation per output looping over
//! its elements (no barriers: CPU adapters run a workgroup's invocations in
//! turn, so tree reductions cost more than loops there), or one workgroup per
//! output with a tree reduction in workgroup memory (few outputs over many
//! elements, and GPUs).

use crate::error::Result;
use crate::{Buffer, KernelProfile};

use super::description::{Epilogue, Render, Rendered};

mod source;
use source::generate;

/// What a [`Reduction`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceKind {
    Sum,
    Mean,
    Max,
    Min,
    /// Mean and biased variance (two passes: the centred sum of squares does
    /// not cancel catastrophically).
    Moments,
}

/// Where a reduction's results go; output `o` is the row-major index over
/// the kept axes.
#[derive(Clone, Debug)]
pub enum ReduceOutput {
    /// `buffer[offset + o] = result`.
    Write { buffer: Buffer, offset: usize },
    /// `buffer[offset + o] = keep·buffer[offset + o] + scale·result`, in place.
    Accumulate {
        buffer: Buffer,
        offset: usize,
        keep: f32,
        scale: f32,
    },
    /// Moments only: the mean and the variance, each at `offset + o` of its
    /// buffer, and optionally running statistics moved toward them.
    Moments {
        mean: (Buffer, usize),
        var: (Buffer, usize),
        running: Option<RunningUpdate>,
    },
}

/// `running_mean = keep·running_mean + (1 − keep)·mean`, likewise the
/// variance times `var_factor` (PyTorch's unbiased correction), in place;
/// `count[0]` (PyTorch's `num_batches_tracked`) goes up by one.
#[derive(Clone, Debug)]
pub struct RunningUpdate {
    pub mean: Buffer,
    pub var: Buffer,
    pub keep: f32,
    pub var_factor: f32,
    pub count: Option<Buffer>,
}

/// One reduction of expression `expr`.
#[derive(Clone, Debug)]
pub struct Reduction {
    pub kind: ReduceKind,
    pub expr: usize,
    pub output: ReduceOutput,
}

/// A kernel reducing the epilogue's values over `axes` of `shape`: each of
/// `reductions` reduces one expression of the program, and the epilogue's
/// stores write elementwise results met on the way.
#[derive(Clone, Debug)]
pub struct ReduceKernel {
    pub label: String,
    pub shape: Vec<usize>,
    pub axes: Vec<usize>,
    pub reductions: Vec<Reduction>,
    pub epilogue: Epilogue,
}

impl Render for ReduceKernel {
    fn render(&self, profile: &KernelProfile) -> Result<Rendered<'_>> {
        Ok(Rendered::Generated(generate(profile, self)?))
    }
}
