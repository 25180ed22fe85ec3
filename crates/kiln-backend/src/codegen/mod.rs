//! Kernels generated from a description instead of written out by hand.
//! A [`KernelDescription`] says what one kernel computes, one variant per
//! kind:
//!
//! - [`MapKernel`]: a [`Program`] of elementwise operations over one or
//!   more iteration spaces, reading any number of strided operands and
//!   storing any number of results (a fused chain of maps, broadcasts and
//!   selects);
//! - [`ReduceKernel`]: sums, means, extrema and batch moments over some
//!   axes, with a program computing what is reduced (the prologue) and,
//!   optionally, storing elementwise results met on the way;
//! - [`GemmKernel`]: matrix products with a program applied to each product
//!   element (the epilogue: bias, activation, scaling, dropout, residual
//!   additions);
//! - [`ConvKernel`]: the three passes of a 2-D convolution as implicit
//!   GEMMs, with the same epilogues;
//! - [`PoolKernel`]: max and average pooling and their gradients;
//! - [`SoftmaxKernel`], [`ConcatKernel`] and [`UpdateKernel`] (optimizer
//!   steps over several parameters).
//!
//! [`Device::build`](crate::Device::build) renders a description for the
//! device's [`KernelProfile`](crate::KernelProfile) and builds it;
//! [`KernelDescription::source`] shows the text (for naga validation in
//! tests). Every size, stride, offset and scalar a kernel reads lives in its
//! parameter words, so two kernels that differ only in those values have the
//! same source and share one pipeline: generated modules are cached by their
//! text, which is their structure.

mod conv;
mod description;
mod elementwise;
mod epilogue;
mod gemm;
mod pool;
mod program;
mod reduction;
mod register_block;
mod words;

pub use crate::ops::optim::{UpdateKernel, UpdateSlot};
pub use crate::ops::softmax::SoftmaxKernel;
pub use conv::{Conv2dGeometry, ConvKernel, ConvPass, ConvSpec};
pub use description::{Epilogue, KernelDescription};
pub(crate) use description::{HandwrittenCall, Render, Rendered};
pub use elementwise::{ConcatKernel, ConcatPart, MapKernel, Segment};
pub use gemm::{GemmKernel, GemmLoad, GemmSpec};
pub use pool::{Pool2dGeometry, PoolIo, PoolKernel, PoolKind};
pub use program::{Expr, Program};
pub use reduction::{ReduceKernel, ReduceKind, ReduceOutput, Reduction, RunningUpdate};

use crate::error::{invalid, Result};
use crate::kernel::{Generated, Grid};
use crate::layout::StridedLayout;
use crate::Buffer;
use words::Words;

/// The WGSL files every generated module starts with: the numerics of the
/// elementwise operations and the dropout hash.
pub const PRELUDE: [&str; 3] = ["activations.wgsl", "elementwise_ops.wgsl", "hash.wgsl"];

/// Invocations per workgroup of the one-dimensional generated kernels.
pub(crate) const WG: u32 = 64;

/// Declares `let {name} = {own};` in `lines` (each lane's own load) and
/// returns the expressions of lane j's value for j < `items`: how the
/// lanes of a subgroup share what each loaded.
pub(crate) fn lane_broadcasts(
    lines: &mut Vec<String>,
    name: &str,
    own: &str,
    items: usize,
) -> Vec<String> {
    lines.push(format!("    let {name} = {own};"));
    (0..items)
        .map(|j| format!("subgroupBroadcast({name}, {j}u)"))
        .collect()
}

/// The entry point of the one-dimensional generated kernels: `WG`
/// invocations per workgroup, workgroups folded into x and y.
pub(crate) fn linear_entry() -> String {
    format!("@compute @workgroup_size({WG})\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,\n        @builtin(local_invocation_index) lid: u32) {{")
}

/// A generated module's text: `parts` (declarations, workgroup memory,
/// helper functions), then `entry` opening `main`, the kernel's words
/// loaded, and `main`'s lines.
pub(crate) fn module(parts: &[&str], entry: &str, main: &[String]) -> String {
    format!(
        "{}\n{entry}\n    let P = load_words();\n{}\n}}\n",
        parts.join("\n"),
        main.join("\n")
    )
}

/// A fixed grid of workgroups, refused where a dimension exceeds what a
/// dispatch can count.
pub(crate) fn fixed_grid(label: &str, grid: [u64; 3]) -> Result<Grid> {
    if grid.iter().any(|&g| g > u32::MAX as u64) {
        return Err(invalid(label, format!("grid {grid:?} is too large")));
    }
    Ok(Grid::Fixed(grid.map(|g| g as u32)))
}

pub use crate::profile::MAX_LOOP_TRIPS;

/// A tensor a generated kernel reads: its buffer, and a layout whose shape is
/// the kernel's iteration space (broadcasting is a stride of 0).
#[derive(Clone, Debug)]
pub struct Operand {
    pub buffer: Buffer,
    pub layout: StridedLayout,
}

/// Where a generated kernel writes the value of expression `expr`: a buffer
/// and a layout over the iteration space.
#[derive(Clone, Debug)]
pub struct Store {
    pub expr: usize,
    pub buffer: Buffer,
    pub layout: StridedLayout,
}

/// Checks that a layout addresses the iteration space and stays inside its
/// buffer, so the generated module may skip per-access bounds checks.
pub(crate) fn check_fits(
    what: &str,
    shape: &[usize],
    buffer: &Buffer,
    layout: &StridedLayout,
) -> Result<()> {
    if layout.shape != shape || layout.strides.len() != shape.len() {
        return Err(invalid(
            what,
            format!(
                "layout {:?}/{:?} does not address the iteration space {shape:?}",
                layout.shape, layout.strides
            ),
        ));
    }
    let need = layout.extent() as u64 * 4;
    if need > buffer.size() {
        return Err(invalid(
            what,
            format!(
                "reaches byte {need} of a {}-byte buffer (shape {shape:?}, strides {:?}, offset {})",
                buffer.size(),
                layout.strides,
                layout.offset
            ),
        ));
    }
    Ok(())
}

/// The distinct buffers of a kernel, each bound once (`b0`, `b1`, …):
/// read-write where anything stores to it.
#[derive(Default)]
pub(crate) struct Bindings<'a> {
    buffers: Vec<(&'a Buffer, bool)>,
}

impl<'a> Bindings<'a> {
    /// Bindings for a kernel's operands (read) and stores (written), with
    /// the binding index of each.
    pub fn of_operands(
        operands: &'a [Operand],
        stores: &'a [Store],
    ) -> (Self, Vec<usize>, Vec<usize>) {
        let mut b = Self::default();
        let op: Vec<usize> = operands.iter().map(|o| b.of(&o.buffer, false)).collect();
        let st: Vec<usize> = stores.iter().map(|s| b.of(&s.buffer, true)).collect();
        (b, op, st)
    }

    /// The binding of `buffer`, added if new.
    pub fn of(&mut self, buffer: &'a Buffer, writes: bool) -> usize {
        match self.buffers.iter().position(|(b, _)| b.same(buffer)) {
            Some(i) => {
                self.buffers[i].1 |= writes;
                i
            }
            None => {
                self.buffers.push((buffer, writes));
                self.buffers.len() - 1
            }
        }
    }

    pub fn len(&self) -> usize {
        self.buffers.len()
    }

    /// The declarations; `vec4[i]` declares binding `i` as `array<vec4<f32>>`.
    pub fn declare(&self, vec4: &[bool]) -> String {
        let mut s = String::new();
        for (i, (_, writes)) in self.buffers.iter().enumerate() {
            let access = if *writes { "read_write" } else { "read" };
            let elem = if vec4.get(i).copied().unwrap_or(false) {
                "vec4<f32>"
            } else {
                "f32"
            };
            s += &format!("@group(0) @binding({i}) var<storage, {access}> b{i}: array<{elem}>;\n");
        }
        s += &format!(
            "@group(0) @binding({}) var<storage, read> params: array<u32>;\n",
            self.buffers.len()
        );
        s
    }

    pub fn buffers(&self) -> impl Iterator<Item = &'a Buffer> + '_ {
        self.buffers.iter().map(|(b, _)| *b)
    }

    /// The kernel of `source` over these bindings, with `words` as its
    /// parameter words; trusted (built without naga's guards) unless the
    /// caller says otherwise.
    pub fn generated(&self, label: String, source: String, words: &Words, grid: Grid) -> Generated {
        Generated {
            label,
            source,
            words: words.values(),
            buffers: self.buffers().cloned().collect(),
            grid,
            trusted: true,
        }
    }
}

/// Merges neighbouring axes that every stride list walks as one axis
/// (`stride[d] == stride[d + 1]·shape[d + 1]`, zeros included) and drops axes
/// of size 1. Returns the new shape; `strides` are rewritten in place.
pub(crate) fn coalesce(shape: &[usize], strides: &mut [Vec<usize>]) -> Vec<usize> {
    let mut out_shape: Vec<usize> = Vec::new();
    let mut out_strides: Vec<Vec<usize>> = vec![Vec::new(); strides.len()];
    for d in 0..shape.len() {
        if shape[d] == 1 {
            continue;
        }
        let mergeable = !out_shape.is_empty()
            && strides.iter().zip(&out_strides).all(|(s, o)| {
                let last = *o.last().expect("same length as out_shape");
                last == s[d] * shape[d]
            });
        if mergeable {
            *out_shape.last_mut().expect("non-empty") *= shape[d];
            for (s, o) in strides.iter().zip(out_strides.iter_mut()) {
                *o.last_mut().expect("non-empty") = s[d];
            }
        } else {
            out_shape.push(shape[d]);
            for (s, o) in strides.iter().zip(out_strides.iter_mut()) {
                o.push(s[d]);
            }
        }
    }
    for (s, o) in strides.iter_mut().zip(out_strides) {
        *s = o;
    }
    out_shape
}

/// The strides of every operand's layout, then every store's, and their
/// offsets in the same order.
pub(crate) fn layouts_of(operands: &[Operand], stores: &[Store]) -> (Vec<Vec<usize>>, Vec<usize>) {
    let layouts = operands
        .iter()
        .map(|o| &o.layout)
        .chain(stores.iter().map(|s| &s.layout));
    layouts.map(|l| (l.strides.clone(), l.offset)).unzip()
}

/// The row-major strides of `shape`.
pub(crate) fn row_major(shape: &[usize]) -> Vec<usize> {
    crate::layout::contiguous_strides(shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalescing_merges_axes_every_operand_walks_together() {
        // [2, 3, 4] contiguous, and a per-channel [3] broadcast (0, 1, 0).
        let mut s = vec![vec![12, 4, 1], vec![0, 1, 0]];
        assert_eq!(coalesce(&[2, 3, 4], &mut s), vec![2, 3, 4]);
        // Two contiguous operands merge into one axis.
        let mut s = vec![vec![12, 4, 1], vec![12, 4, 1]];
        assert_eq!(coalesce(&[2, 3, 4], &mut s), vec![24]);
        assert_eq!(s, vec![vec![1], vec![1]]);
        // A row vector over [5, 1, 6]: the size-1 axis goes.
        let mut s = vec![vec![6, 6, 1], vec![0, 0, 1]];
        assert_eq!(coalesce(&[5, 1, 6], &mut s), vec![5, 6]);
        assert_eq!(s, vec![vec![6, 1], vec![0, 1]]);
    }
}
