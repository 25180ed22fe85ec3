//! Step 3 of the fusion pass: merging groups over one iteration space
//! where no dependency path leaves one and re-enters the other, and the
//! check that no kernel binds more buffers than the adapter allows.

use std::collections::{BTreeMap, HashMap};

use kiln_backend::ops::optim::UpdateRule;

use super::{dependencies, storage_root, Class, Group, Space};
use crate::graph::{Graph, Op};

/// True when `to` is reachable from `from` along dependencies (`deps[g]`
/// lists what g reads from), other than by the direct edge.
fn reaches_indirectly(deps: &[Vec<usize>], from: usize, to: usize) -> bool {
    // Walk backwards from `to` through its dependencies, skipping `from`
    // itself as a direct predecessor.
    let mut seen = vec![false; deps.len()];
    let mut stack: Vec<usize> = deps[to].iter().copied().filter(|&d| d != from).collect();
    while let Some(g) = stack.pop() {
        if g == from {
            return true;
        }
        if std::mem::replace(&mut seen[g], true) {
            continue;
        }
        stack.extend(deps[g].iter().copied());
    }
    false
}

/// Whether merging groups `a` and `b` keeps the schedule acyclic.
fn can_merge(deps: &[Vec<usize>], a: usize, b: usize) -> bool {
    !reaches_indirectly(deps, a, b) && !reaches_indirectly(deps, b, a)
}

/// Whether every value `to` reads from `from` can be handed over inside one
/// kernel: an elementwise value (or the product of a GEMM), read at the same
/// element of the shared iteration space by an elementwise member or as what
/// a reduction reduces. A reduction's result, a product's operand, or a
/// value read through a reshape or a broadcast must be stored first.
fn hand_over(graph: &Graph, classes: &[Class], from: &Group, to: &Group, shape: &[usize]) -> bool {
    let nodes = graph.nodes();
    let produced = |x: usize| {
        from.roots.contains(&x)
            || matches!(nodes[x].op, Op::Output(_))
                && from.roots.contains(&nodes[x].inputs[0].index())
    };
    for &m in &to.members {
        if from.members.contains(&m) {
            continue;
        }
        for (slot, x) in nodes[m].inputs.iter().enumerate() {
            let root = storage_root(graph, x.index());
            if !produced(root) {
                continue;
            }
            let x = x.index();
            let elementwise_reader = match (classes[m], &nodes[m].op) {
                (Class::Map, Op::Dropout { .. }) => slot == 0,
                (Class::Map, _) => true,
                (Class::Update, Op::Assign) => slot == 1,
                (Class::Update, Op::Accumulate { .. }) => slot == 1,
                (Class::Reduction, Op::Accumulate { .. }) => slot == 1,
                (Class::Reduction, _) => slot == 0,
                _ => false,
            };
            let same_element = x == root && nodes[x].shape == shape;
            let stored_value = matches!(classes[x], Class::Map | Class::View | Class::Update)
                || matches!(from.space, Space::Gemm { anchor, .. } if anchor == x);
            if !(elementwise_reader && same_element && stored_value) {
                return false;
            }
        }
    }
    true
}

/// The space two groups make together, if they can share a kernel.
fn merged_space(a: &Space, b: &Space) -> Option<Space> {
    if a.shape()? != b.shape()? {
        return None;
    }
    match (a, b) {
        (Space::Map(_), other) | (other, Space::Map(_)) => Some(other.clone()),
        (Space::Reduce { axes: x, .. }, Space::Reduce { axes: y, .. }) if x == y => Some(a.clone()),
        _ => None,
    }
}

/// Reduced axes of size 1 change nothing: they are dropped, so reductions
/// that differ only in them share a space.
pub(super) fn canonical_axes(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    axes.iter().copied().filter(|&a| shape[a] != 1).collect()
}

/// The most nodes a product's epilogue takes. A register-blocked product
/// repeats its epilogue for every element of its block (64 times), so a
/// long chain makes a kernel whose compilation costs seconds on a software
/// adapter (LLVM) and whose registers spill: past this size the chain runs
/// as a kernel of its own. Measured on lavapipe (BENCHMARKS.md): at 5
/// rather than 12 the LSTM's first step on an empty shader cache takes
/// 1.8 s instead of 5.5 s and its warm step 16 ms instead of 19–23 ms, for
/// one more dispatch; ResNet-50's full fine-tuning 7.6 s instead of 13.5 s.
const MAX_GEMM_EPILOGUE: usize = 5;

/// How many earlier groups of the same shape a group tries to merge with
/// (besides those it reads from): enough for the chains of one layer, and it
/// bounds the pass on deep graphs.
const MERGE_WINDOW: usize = 8;

pub(super) fn merge_groups(
    graph: &Graph,
    classes: &[Class],
    groups: &mut Vec<Group>,
    materialised: &[bool],
    max_buffers: usize,
) {
    let merge = Merge {
        graph,
        classes,
        materialised,
        max_buffers,
    };
    merge.siblings(groups);
    join_running_stats(graph, groups, materialised);
    group_updates(graph, groups);
}

/// What sibling merges consult.
struct Merge<'a> {
    graph: &'a Graph,
    classes: &'a [Class],
    materialised: &'a [bool],
    max_buffers: usize,
}

impl Merge<'_> {
    /// Sibling merges over one iteration space, in graph order. Merged-away
    /// groups become `None`; dependencies are kept up to date as groups
    /// merge.
    fn siblings(&self, groups: &mut Vec<Group>) {
        let mut slots: Vec<Option<Group>> = groups.drain(..).map(Some).collect();
        slots.sort_by_key(|g| g.as_ref().map(|g| g.roots[0]));
        let mut deps = dependencies(
            self.graph,
            &slots.iter().flatten().cloned().collect::<Vec<_>>(),
            self.materialised,
        );
        let mut by_shape: HashMap<Vec<usize>, Vec<usize>> = HashMap::new();
        for b in 0..slots.len() {
            let Some(shape) = slots[b]
                .as_ref()
                .and_then(|g| g.space.shape().map(<[usize]>::to_vec))
            else {
                continue;
            };
            let earlier = by_shape.entry(shape).or_default();
            // Producers this group reads first (an epilogue, a reduction fed
            // on the way), then the most recent others.
            let mut candidates: Vec<usize> = earlier
                .iter()
                .rev()
                .copied()
                .filter(|a| deps[b].contains(a))
                .collect();
            candidates.extend(
                earlier
                    .iter()
                    .rev()
                    .copied()
                    .filter(|a| !deps[b].contains(a))
                    .take(MERGE_WINDOW),
            );
            let merged = candidates.into_iter().find_map(|a| {
                let (ga, gb) = (slots[a].as_ref()?, slots[b].as_ref()?);
                Some((a, self.merged(&deps, (a, ga), (b, gb))?))
            });
            match merged {
                Some((a, group)) => {
                    slots[a] = Some(group);
                    slots[b] = None;
                    take_over(&mut deps, a, b);
                }
                None => earlier.push(b),
            }
        }
        *groups = slots.into_iter().flatten().collect();
    }

    /// Group `ga` with `gb` merged into it, where their spaces merge, no
    /// dependency path leaves one and re-enters the other, each can take in
    /// what the other computes, and the kernel stays within the buffer and
    /// epilogue limits.
    fn merged(
        &self,
        deps: &[Vec<usize>],
        (a, ga): (usize, &Group),
        (b, gb): (usize, &Group),
    ) -> Option<Group> {
        let space = merged_space(&ga.space, &gb.space)?;
        if !can_merge(deps, a, b) {
            return None;
        }
        let shape = space
            .shape()
            .expect("mergeable spaces have shapes")
            .to_vec();
        let (graph, classes) = (self.graph, self.classes);
        if !hand_over(graph, classes, ga, gb, &shape) || !hand_over(graph, classes, gb, ga, &shape)
        {
            return None;
        }
        let mut merged = ga.clone();
        merged.space = space;
        for &m in &gb.members {
            if !merged.members.contains(&m) {
                merged.members.push(m);
            }
        }
        merged.members.sort_unstable();
        merged.roots.extend(gb.roots.iter().copied());
        merged.roots.sort_unstable();
        if buffers_of(graph, &merged, self.materialised) > self.max_buffers {
            return None;
        }
        if matches!(merged.space, Space::Gemm { .. }) && merged.members.len() > MAX_GEMM_EPILOGUE {
            return None;
        }
        Some(merged)
    }
}

/// Group `a`, having merged `b`, takes over `b`'s dependencies and
/// dependents.
fn take_over(deps: &mut [Vec<usize>], a: usize, b: usize) {
    let from_b: Vec<usize> = std::mem::take(&mut deps[b]);
    for d in from_b {
        if d != a && !deps[a].contains(&d) {
            deps[a].push(d);
        }
    }
    for list in deps.iter_mut() {
        if let Some(p) = list.iter().position(|&d| d == b) {
            list.remove(p);
            if !list.contains(&a) {
                list.push(a);
            }
        }
    }
    deps[a].retain(|&d| d != a);
}

/// Running statistics join the batch moments they move toward.
fn join_running_stats(graph: &Graph, groups: &mut Vec<Group>, materialised: &[bool]) {
    let nodes = graph.nodes();
    let stats_of = |m: usize| -> Option<usize> {
        let node = &nodes[m];
        if !matches!(node.op, Op::RunningStats { .. }) {
            return None;
        }
        let (mean, var) = (node.inputs[2].index(), node.inputs[3].index());
        match (&nodes[mean].op, &nodes[var].op) {
            (Op::Output(0), Op::Output(1)) if nodes[mean].inputs[0] == nodes[var].inputs[0] => {
                Some(nodes[mean].inputs[0].index())
            }
            _ => None,
        }
    };
    let mut g = 0;
    while g < groups.len() {
        let root = groups[g].roots[0];
        if groups[g].roots.len() == 1 && groups[g].members == [root] {
            if let Some(moments) = stats_of(root) {
                let deps = dependencies(graph, groups, materialised);
                let target = groups
                    .iter()
                    .position(|h| h.roots.contains(&moments) && h.members.contains(&moments));
                if let Some(t) = target {
                    if t != g && can_merge(&deps, t, g) {
                        groups[t].members.push(root);
                        groups[t].members.sort_unstable();
                        groups[t].roots.push(root);
                        groups.remove(g);
                        continue;
                    }
                }
            }
        }
        g += 1;
    }
}

/// Optimizer steps of one rule on one hyperparameter input share grouped
/// kernels.
fn group_updates(graph: &Graph, groups: &mut Vec<Group>) {
    let nodes = graph.nodes();
    let mut by_hyper: BTreeMap<(usize, UpdateRule), Vec<usize>> = BTreeMap::new();
    for (g, group) in groups.iter().enumerate() {
        if let Space::Single(s) = group.space {
            if let Op::OptimizerStep { rule } = nodes[s].op {
                let hyper = nodes[s].inputs[nodes[s].inputs.len() - 1].index();
                by_hyper.entry((hyper, rule)).or_default().push(g);
            }
        }
    }
    let mut remove: Vec<usize> = Vec::new();
    for (_, gs) in by_hyper {
        if gs.len() < 2 {
            continue;
        }
        let steps: Vec<usize> = gs.iter().map(|&g| groups[g].roots[0]).collect();
        let first = gs[0];
        groups[first] = Group {
            space: Space::Updates(steps.clone()),
            members: steps.clone(),
            roots: steps,
        };
        remove.extend(&gs[1..]);
    }
    remove.sort_unstable();
    for g in remove.into_iter().rev() {
        groups.remove(g);
    }
}

/// The distinct buffers a group's kernel binds, roughly: every stored input
/// it reads and every result it writes.
fn buffers_of(graph: &Graph, group: &Group, materialised: &[bool]) -> usize {
    let nodes = graph.nodes();
    let mut seen: Vec<usize> = Vec::new();
    let mut add = |i: usize| {
        if !seen.contains(&i) {
            seen.push(i);
        }
    };
    for &m in &group.members {
        for x in &nodes[m].inputs {
            let root = storage_root(graph, x.index());
            if !group.members.contains(&x.index()) && !matches!(nodes[root].op, Op::Const(_)) {
                add(root);
            }
        }
        if materialised[m] {
            add(m);
        }
    }
    seen.len()
}

/// A group whose kernel would bind more buffers than the adapter allows, and
/// the inlined node to store instead.
pub(super) fn too_wide(
    graph: &Graph,
    groups: &[Group],
    materialised: &[bool],
    max_buffers: usize,
) -> Option<usize> {
    let nodes = graph.nodes();
    for g in groups {
        if matches!(g.space, Space::Single(_) | Space::Updates(_)) {
            continue;
        }
        if buffers_of(graph, g, materialised) > max_buffers {
            // The inlined node reading the most stored inputs.
            return g
                .members
                .iter()
                .copied()
                .filter(|&m| !materialised[m])
                .max_by_key(|&m| {
                    nodes[m]
                        .inputs
                        .iter()
                        .filter(|x| !g.members.contains(&x.index()))
                        .count()
                });
        }
    }
    None
}
