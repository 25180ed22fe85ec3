//! Kernels generated from a description instead of written out by hand:
//!
//! - [`elementwise_kernel`]: a [`Program`] of elementwise operations over an
//!   iteration space, reading any number of strided operands and storing any
//!   number of results (a fused chain of maps, broadcasts and selects);
//! - [`reduction_kernel`]: sums, means, extrema and batch moments over some
//!   axes, with a program computing what is reduced (the prologue) and,
//!   optionally, storing elementwise results met on the way;
//! - [`gemm_kernel`]: matrix products (and the implicit-GEMM convolutions)
//!   with a program applied to each product element (the epilogue: bias,
//!   activation, scaling, dropout, residual additions);
//! - [`conv_kernel`]: the three passes of a 2-D convolution as implicit
//!   GEMMs, with the same epilogues;
//! - [`pool_kernel`]: max and average pooling and their gradients.
//!
//! Every size, stride, offset and scalar a kernel reads lives in its
//! parameter words, so two kernels that differ only in those values have the
//! same source and share one pipeline: generated modules are cached by their
//! text, which is their structure. The source of a kernel is available before
//! it is built (for naga validation in tests) through the `*_source`
//! functions.

mod conv;
mod elementwise;
mod epilogue;
mod gemm;
mod pool;
mod program;
mod reduction;
mod words;

pub use conv::{conv_kernel, conv_source, Conv2dGeometry, ConvPass, ConvSpec};
pub use elementwise::{elementwise_kernel, elementwise_source, segmented_kernel, Segment};
pub use gemm::{gemm_kernel, gemm_source, GemmLoad, GemmSpec};
pub use pool::{pool_kernel, pool_source, Pool2dGeometry, PoolIo, PoolKind};
pub use program::{Expr, Program};
pub use reduction::{
    reduction_kernel, reduction_source, ReduceKind, ReduceOutput, Reduction, RunningUpdate,
};

use crate::error::{invalid, Result};
use crate::layout::StridedLayout;
use crate::Buffer;

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

/// The entry point of an 8×8-block kernel with 8×8 invocations, `lid.x`
/// walking columns and `lid.y` rows. With `lanes`, `lid` is the lane
/// within its subgroup and the subgroup's index, so that a subgroup's
/// lanes share their rows whatever order the driver forms subgroups in
/// (the builtins need a one-dimensional workgroup).
pub(crate) fn block_entry(lanes: bool) -> &'static str {
    match lanes {
        true => "@compute @workgroup_size(64)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_id) subgroup: u32, @builtin(subgroup_invocation_id) lane: u32) {\n    let lid = vec2<u32>(lane, subgroup);",
        false => "@compute @workgroup_size(8, 8, 1)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {",
    }
}

pub use crate::profile::MAX_LOOP_TRIPS;

/// A tensor a generated kernel reads: its buffer, and a layout whose shape is
/// the kernel's iteration space (broadcasting is a stride of 0).
#[derive(Clone, Debug)]
pub struct Operand<'a> {
    pub buffer: &'a Buffer,
    pub layout: StridedLayout,
}

/// Where a generated kernel writes the value of expression `expr`: a buffer
/// and a layout over the iteration space.
#[derive(Clone, Debug)]
pub struct Store<'a> {
    pub expr: usize,
    pub buffer: &'a Buffer,
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
        operands: &[Operand<'a>],
        stores: &[Store<'a>],
    ) -> (Self, Vec<usize>, Vec<usize>) {
        let mut b = Self::default();
        let op: Vec<usize> = operands.iter().map(|o| b.of(o.buffer, false)).collect();
        let st: Vec<usize> = stores.iter().map(|s| b.of(s.buffer, true)).collect();
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
