//! The fusion pass: which nodes share a kernel. It works by rule on any
//! graph, in three steps.
//!
//! 1. **Inlining.** An elementwise node (map, broadcast, select, dropout) is
//!    computed inside every kernel that reads it, never stored, when all its
//!    readers can take it in: other elementwise nodes, the value a reduction
//!    reduces (its prologue), or the value an in-place update writes. Views
//!    (slices, transposes) are inlined as the layout through which their
//!    stored input is read. Everything else is *materialised*: it gets a
//!    buffer and is the root of a kernel of its own.
//! 2. **Groups.** Each materialised node roots a group over an iteration
//!    space: elementwise roots over their shape, reductions over their
//!    input's shape and axes, matrix products over their output, other ops
//!    on their own.
//! 3. **Merging.** Groups over the same iteration space merge when no
//!    dependency path leaves one and re-enters the other: elementwise groups
//!    with each other (one kernel storing several results), into a product's
//!    epilogue (bias, activation, scaling, dropout, residual additions), and
//!    into a reduction's pass (stored on the way); reductions over the same
//!    axes share their pass. Running statistics join the batch moments they
//!    are moved toward, and Adam steps on one hyperparameter input share
//!    grouped kernels.
//!
//! What stays special, and why: batch moments are one op (two passes in one
//! kernel, since the one-pass variance cancels catastrophically); optimizer
//! steps are grouped by rule and hyperparameter input into kernels that
//! update several parameters each (PyTorch's foreach optimizers), which a
//! per-shape fusion cannot express; softmax and concatenation keep their
//! own kernels.
//!
//! # Kernel kinds
//!
//! Each group becomes kernels of one kind (`kernels.rs` describes them as
//! [`KernelDescription`](kiln_backend::codegen::KernelDescription)s, which
//! the backend renders for the adapter's kernel profile):
//!
//! | kind | what it fuses | why |
//! |---|---|---|
//! | map | a chain of elementwise ops, broadcasts, selects, dropout and views over one shape, storing every result the group materialises, and in-place assignments and running statistics of that shape | each element is independent: one read of every input, one write of every result |
//! | reduce | sums, means, extrema, one-element accumulators and batch moments over the same axes, with the reduced value computed as it is read (its prologue) and elementwise results of the same space stored on the way; running statistics join their moments | the pass reads each element once, so what feeds it and what it meets need no buffer |
//! | GEMM | a matrix product and its epilogue (bias, activation, scaling, dropout, residual additions), at most five ops | the epilogue runs on each product element while it is in registers |
//! | conv | one pass of a 2-D convolution (forward, input or weight gradient) and its epilogue, as for GEMM; 1×1 convolutions of large maps render as GEMMs | the same, as an implicit GEMM that never writes an im2col buffer |
//! | pool | one max or average pooling pass, or its gradient, alone | a window gathers from neighbours, which an elementwise program cannot read |
//! | softmax | one softmax or log-softmax, alone | a row's maximum and sum must be known before any output |
//! | concat | the copies of every input into its region of the output, one kernel per adapter's worth of bindings | one dispatch instead of one per input |
//! | optimizer update | every parameter step of one rule on one hyperparameter input, as many per kernel as the adapter binds | PyTorch's `foreach` optimizers: a handful of dispatches for a model's hundreds of tensors |

use std::collections::{BTreeMap, HashMap};

use crate::graph::{Graph, Op};

mod merge;
use merge::{canonical_axes, merge_groups, too_wide};

/// How the pass treats a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// Inputs, parameters, constants: storage of their own, no kernel.
    Leaf,
    /// A reshape (its input's storage) or a result of a multi-result node
    /// (storage its producer writes).
    Alias,
    /// Elementwise: computed wherever it is read, or stored by its own group.
    Map,
    /// A slice or transpose: read through a layout, or copied when stored.
    View,
    /// A reduction, batch moments, or a one-element accumulator of a sum.
    Reduction,
    /// An in-place elementwise update (assign, accumulate, running statistics).
    Update,
    /// A matrix product or a convolution: a product with an epilogue.
    Gemm,
    /// An op with its own kernels (softmax, concatenation, pooling,
    /// optimizer steps).
    Single,
}

fn class(graph: &Graph, i: usize) -> Class {
    let node = &graph.nodes()[i];
    match &node.op {
        Op::Input(_) | Op::Param { .. } | Op::Const(_) => Class::Leaf,
        Op::Reshape | Op::Output(_) => Class::Alias,
        Op::Unary(_) | Op::Binary(_) | Op::Select | Op::Expand | Op::Dropout { .. } => Class::Map,
        Op::Slice { .. } | Op::Permute(_) => Class::View,
        Op::Reduce { .. } | Op::Moments { .. } => Class::Reduction,
        Op::Accumulate { .. } if node.numel() == 1 => Class::Reduction,
        Op::Assign | Op::Accumulate { .. } | Op::RunningStats { .. } => Class::Update,
        Op::MatMul { .. } | Op::Conv2d { .. } => Class::Gemm,
        Op::Softmax { .. }
        | Op::Concat { .. }
        | Op::OptimizerStep { .. }
        | Op::Pool2d { .. }
        | Op::Pool2dGrad { .. } => Class::Single,
    }
}

/// True for a reshape that only inserts or removes axes of size 1: the same
/// elements in the same order, so it can be evaluated inside a kernel (see
/// `kernels.rs`' frames) rather than needing its input stored.
pub(crate) fn unit_reshape(graph: &Graph, i: usize) -> bool {
    let node = &graph.nodes()[i];
    node.op == Op::Reshape && same_elements(&node.shape, graph.shape(node.inputs[0]))
}

/// Two shapes with the same axes once those of size 1 are dropped.
pub(crate) fn same_elements(a: &[usize], b: &[usize]) -> bool {
    a.iter()
        .filter(|&&d| d != 1)
        .eq(b.iter().filter(|&&d| d != 1))
}

/// The iteration space of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Space {
    /// Elementwise over a shape.
    Map(Vec<usize>),
    /// A reduction over `axes` of `shape`.
    Reduce { shape: Vec<usize>, axes: Vec<usize> },
    /// The product of node `anchor`, its epilogue over its output shape.
    Gemm { anchor: usize, shape: Vec<usize> },
    /// One node with kernels of its own.
    Single(usize),
    /// Optimizer steps of one rule on one hyperparameter input, run as
    /// grouped kernels.
    Updates(Vec<usize>),
}

impl Space {
    /// The shape a merge compares, for the spaces that can merge.
    fn shape(&self) -> Option<&[usize]> {
        match self {
            Space::Map(s) | Space::Reduce { shape: s, .. } | Space::Gemm { shape: s, .. } => {
                Some(s)
            }
            _ => None,
        }
    }
}

/// A set of nodes computed by one kernel (or, for [`Space::Single`] and
/// [`Space::Updates`], by the nodes' own kernels).
#[derive(Clone, Debug)]
pub(crate) struct Group {
    pub space: Space,
    /// Nodes evaluated inside, in graph order: inlined producers and the
    /// materialised roots.
    pub members: Vec<usize>,
    /// Materialised members of the group (roots of merged groups).
    pub roots: Vec<usize>,
}

/// The fusion decisions for a graph.
pub(crate) struct Fused {
    pub groups: Vec<Group>,
    /// For every group, the groups it must run after (see [`dependencies`]).
    pub dependencies: Vec<Vec<usize>>,
    /// How the pass treated each node.
    pub classes: Vec<Class>,
    /// Each multi-result node's live `Output(k)` nodes, which its kernel
    /// writes.
    pub results: Vec<Vec<usize>>,
}

impl Fused {
    /// The live `Output(k)` node of the multi-result node `r`, if any.
    pub fn result(&self, graph: &Graph, r: usize, k: usize) -> Option<usize> {
        let nodes = graph.nodes();
        self.results[r]
            .iter()
            .copied()
            .find(|&o| nodes[o].op == Op::Output(k))
    }
}

/// The storage a node's value lives in: itself, or what it aliases (a
/// reshape its input's, an in-place update the parameter it writes).
pub(crate) fn storage_root(graph: &Graph, mut i: usize) -> usize {
    let nodes = graph.nodes();
    while nodes[i].op == Op::Reshape || nodes[i].op.is_update() {
        i = nodes[i].inputs[0].index();
    }
    i
}

/// Runs the pass. `outputs` are materialised; `max_buffers` bounds the
/// buffers one kernel binds (the adapter's storage-buffer limit, less one for
/// the parameter words). With `enabled` false every node keeps a kernel of
/// its own.
pub(crate) fn fuse(
    graph: &Graph,
    live: &[bool],
    outputs: &[usize],
    enabled: bool,
    max_buffers: usize,
) -> Fused {
    let nodes = graph.nodes();
    let n = nodes.len();
    let classes: Vec<Class> = (0..n).map(|i| class(graph, i)).collect();
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in (0..n).filter(|&i| live[i]) {
        for x in &nodes[i].inputs {
            if !readers[x.index()].contains(&i) {
                readers[x.index()].push(i);
            }
        }
    }
    let is_output: Vec<bool> = {
        let mut v = vec![false; n];
        for &o in outputs {
            v[o] = true;
        }
        v
    };
    let mut forced = vec![false; n];
    // Inlining tries, and where a kernel would bind too many buffers, the
    // heaviest inlined node is stored instead and the pass runs again.
    loop {
        let (materialised, homes) = inline(
            graph, live, &classes, &readers, &is_output, &forced, enabled,
        );
        let mut groups = initial_groups(graph, live, &classes, &materialised, &homes);
        if enabled {
            merge_groups(graph, &classes, &mut groups, &materialised, max_buffers);
        }
        if let Some(node) = too_wide(graph, &groups, &materialised, max_buffers) {
            forced[node] = true;
            continue;
        }
        let dependencies = dependencies(graph, &groups, &materialised);
        let mut results = vec![Vec::new(); n];
        for i in (0..n).filter(|&i| live[i]) {
            if let Op::Output(_) = nodes[i].op {
                results[nodes[i].inputs[0].index()].push(i);
            }
        }
        return Fused {
            groups,
            dependencies,
            classes,
            results,
        };
    }
}

/// The group computing each materialised node (of `n`).
fn producers(groups: &[Group], n: usize) -> Vec<Option<usize>> {
    let mut producer = vec![None; n];
    for (g, group) in groups.iter().enumerate() {
        for &r in &group.roots {
            producer[r] = Some(g);
        }
    }
    producer
}

/// Decides which nodes are inlined, and into which roots' groups.
fn inline(
    graph: &Graph,
    live: &[bool],
    classes: &[Class],
    readers: &[Vec<usize>],
    is_output: &[bool],
    forced: &[bool],
    enabled: bool,
) -> (Vec<bool>, Vec<Vec<usize>>) {
    let nodes = graph.nodes();
    let n = nodes.len();
    let mut materialised = vec![false; n];
    let mut homes: Vec<Vec<usize>> = vec![Vec::new(); n];
    // Views need their input addressable: stored, or itself a view.
    let mut must_store = forced.to_vec();
    let chain_depth = chain_depths(graph, live, classes);
    // The iteration shape of the group a root anchors.
    let space_shape = |r: usize| -> Vec<usize> {
        match classes[r] {
            Class::Reduction => match &nodes[r].op {
                Op::Accumulate { .. } => nodes[r].inputs[1],
                _ => nodes[r].inputs[0],
            }
            .pipe(|x| graph.shape(x).to_vec()),
            _ => nodes[r].shape.clone(),
        }
    };
    for i in (0..n).rev().filter(|&i| live[i]) {
        match classes[i] {
            Class::Map | Class::View => {}
            Class::Alias if unit_reshape(graph, i) => {}
            _ => {
                materialised[i] = true;
                continue;
            }
        }
        let mut fusable = enabled && !is_output[i] && !must_store[i];
        let mut home: Vec<usize> = Vec::new();
        for &r in &readers[i] {
            if !fusable {
                break;
            }
            let slot_ok = |slots: &[usize]| {
                nodes[r]
                    .inputs
                    .iter()
                    .enumerate()
                    .filter(|(_, x)| x.index() == i)
                    .all(|(k, _)| slots.contains(&k))
            };
            let ok = match (classes[r], &nodes[r].op) {
                (Class::Map, Op::Dropout { .. }) => slot_ok(&[0]),
                (Class::Map, _) => true,
                // A unit reshape computed in its readers' kernels.
                (Class::Alias, Op::Reshape) => !materialised[r],
                // A view's input must be addressable: another view, not a map.
                (Class::View, _) => classes[i] == Class::View,
                (Class::Reduction, Op::Accumulate { .. }) => slot_ok(&[1]),
                (Class::Reduction, _) => slot_ok(&[0]),
                (Class::Update, Op::Assign) => slot_ok(&[1]),
                (Class::Update, Op::Accumulate { .. }) => {
                    slot_ok(&[1]) && graph.shape(nodes[r].inputs[0]) == nodes[i].shape.as_slice()
                }
                (Class::Update, Op::RunningStats { .. }) => slot_ok(&[2, 3]),
                _ => false,
            };
            if !ok {
                fusable = false;
                break;
            }
            let targets: Vec<usize> = if materialised[r] {
                vec![r]
            } else {
                homes[r].clone()
            };
            for t in targets {
                if !home.contains(&t) {
                    home.push(t);
                }
            }
        }
        // Dropout counts elements in its own shape: only spaces of that shape.
        if fusable && matches!(nodes[i].op, Op::Dropout { .. }) {
            fusable = home
                .iter()
                .all(|&h| same_elements(&space_shape(h), &nodes[i].shape));
        }
        if fusable && home.is_empty() {
            fusable = false;
        }
        // A value computed in several kernels is recomputed in each: cheap
        // for a bias or an activation, but the tail of a long elementwise
        // chain (an LSTM's cell state, step after step) would be rebuilt
        // from its start in every kernel that reads it. Store those.
        if fusable && home.len() > 1 && chain_depth[i] > MAX_SHARED_DEPTH {
            fusable = false;
        }
        if fusable {
            homes[i] = home;
            if classes[i] == Class::View {
                let x = nodes[i].inputs[0].index();
                if classes[x] == Class::Map {
                    must_store[x] = true;
                }
            }
        } else {
            materialised[i] = true;
            // Stored views and maps read their inputs as any root does.
        }
    }
    (materialised, homes)
}

/// How many elementwise ops deep an inlined value may be and still be
/// computed in more than one kernel.
const MAX_SHARED_DEPTH: usize = 8;

/// For each node, the longest run of elementwise ops and views ending at it
/// (0 for anything else): an upper bound on how deep its inlined
/// expression can be.
fn chain_depths(graph: &Graph, live: &[bool], classes: &[Class]) -> Vec<usize> {
    let nodes = graph.nodes();
    let mut depth = vec![0; nodes.len()];
    for i in (0..nodes.len()).filter(|&i| live[i]) {
        if matches!(classes[i], Class::Map | Class::View) || unit_reshape(graph, i) {
            depth[i] = 1 + nodes[i]
                .inputs
                .iter()
                .map(|x| depth[x.index()])
                .max()
                .unwrap_or(0);
        }
    }
    depth
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}

fn initial_groups(
    graph: &Graph,
    live: &[bool],
    classes: &[Class],
    materialised: &[bool],
    homes: &[Vec<usize>],
) -> Vec<Group> {
    let nodes = graph.nodes();
    let mut inlined_into: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, h) in homes.iter().enumerate() {
        for &r in h {
            inlined_into.entry(r).or_default().push(i);
        }
    }
    let mut groups = Vec::new();
    for r in (0..nodes.len()).filter(|&r| live[r] && materialised[r]) {
        let space = match classes[r] {
            Class::Leaf | Class::Alias => continue,
            Class::Map | Class::View | Class::Update => Space::Map(nodes[r].shape.clone()),
            Class::Reduction => match &nodes[r].op {
                Op::Reduce { axes, .. } | Op::Moments { axes } => {
                    let shape = graph.shape(nodes[r].inputs[0]).to_vec();
                    let axes = canonical_axes(&shape, axes);
                    Space::Reduce { shape, axes }
                }
                _ => {
                    let shape = graph.shape(nodes[r].inputs[1]).to_vec();
                    let axes = canonical_axes(&shape, &(0..shape.len()).collect::<Vec<_>>());
                    Space::Reduce { shape, axes }
                }
            },
            Class::Gemm => Space::Gemm {
                anchor: r,
                shape: nodes[r].shape.clone(),
            },
            Class::Single => Space::Single(r),
        };
        let mut members = inlined_into.remove(&r).unwrap_or_default();
        members.push(r);
        members.sort_unstable();
        groups.push(Group {
            space,
            members,
            roots: vec![r],
        });
    }
    groups
}

/// The groups each group reads from (by materialised inputs, and by the
/// order of in-place updates against every other read of what they write).
pub(crate) fn dependencies(
    graph: &Graph,
    groups: &[Group],
    materialised: &[bool],
) -> Vec<Vec<usize>> {
    let nodes = graph.nodes();
    let n = nodes.len();
    let mut producer = producers(groups, n);
    // Output(k) nodes are written by their tuple's group.
    for i in 0..n {
        if let Op::Output(_) = nodes[i].op {
            producer[i] = producer[nodes[i].inputs[0].index()];
        }
    }
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); groups.len()];
    let add = |deps: &mut Vec<Vec<usize>>, from: usize, to: usize| {
        if from != to && !deps[to].contains(&from) {
            deps[to].push(from);
        }
    };
    // Which parameter each read touches, with the reading node.
    let mut param_reads: BTreeMap<u64, Vec<(usize, usize)>> = BTreeMap::new();
    for (g, group) in groups.iter().enumerate() {
        let steps: Vec<usize> = match &group.space {
            Space::Updates(s) => s.clone(),
            _ => group.members.clone(),
        };
        for &m in &steps {
            for x in &nodes[m].inputs {
                let root = storage_root(graph, x.index());
                if let Op::Param { param, .. } = &nodes[root].op {
                    param_reads.entry(param.id()).or_default().push((m, g));
                }
                if steps.contains(&x.index()) {
                    continue;
                }
                if let Some(p) = producer[root] {
                    add(&mut deps, p, g);
                } else if materialised[root] {
                    // a leaf: no producer
                }
            }
        }
    }
    // An update runs after every earlier read of what it writes, and before
    // every later one.
    for reads in param_reads.values() {
        for &(u, ug) in reads {
            let node = &nodes[u];
            if !node.op.is_update() {
                continue;
            }
            let written: Vec<u64> = node
                .op
                .written_inputs(node.inputs.len())
                .iter()
                .filter_map(
                    |&k| match &nodes[storage_root(graph, node.inputs[k].index())].op {
                        Op::Param { param, .. } => Some(param.id()),
                        _ => None,
                    },
                )
                .collect();
            for pid in written {
                for &(r, rg) in &param_reads[&pid] {
                    if r < u {
                        add(&mut deps, rg, ug);
                    } else if r > u {
                        add(&mut deps, ug, rg);
                    }
                }
            }
        }
    }
    deps
}
