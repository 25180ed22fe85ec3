//! The order a plan's groups run in, and what each reads and stores.

use std::collections::BinaryHeap;

use crate::error::{GraphError, Result};
use crate::fusion::{storage_root, Fused, Space};
use crate::graph::Graph;

/// The groups in an order every dependency allows, nearest to graph order.
pub(super) fn schedule(fused: &Fused) -> Result<Vec<usize>> {
    let deps = &fused.dependencies;
    let g = fused.groups.len();
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); g];
    for (to, list) in deps.iter().enumerate() {
        for &from in list {
            dependents[from].push(to);
        }
    }
    let key = |i: usize| std::cmp::Reverse(fused.groups[i].roots[0]);
    let mut ready: BinaryHeap<(std::cmp::Reverse<usize>, usize)> = (0..g)
        .filter(|&i| waiting[i] == 0)
        .map(|i| (key(i), i))
        .collect();
    let mut order = Vec::with_capacity(g);
    while let Some((_, i)) = ready.pop() {
        order.push(i);
        for &d in &dependents[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.push((key(d), d));
            }
        }
    }
    if order.len() != g {
        return Err(GraphError::Internal(
            "the fused kernels depend on each other in a cycle (a fusion bug): compile with \
             KILN_FUSION=0 to work around it"
                .into(),
        ));
    }
    Ok(order)
}

/// The stored values (storage roots) group `g`'s kernels read.
pub(super) fn group_reads(graph: &Graph, fused: &Fused, g: usize) -> Vec<usize> {
    let nodes = graph.nodes();
    let group = &fused.groups[g];
    let mut out = Vec::new();
    let steps: &[usize] = match &group.space {
        Space::Updates(s) => s,
        _ => &group.members,
    };
    for &m in steps {
        for x in &nodes[m].inputs {
            if group.members.contains(&x.index()) && !matches!(group.space, Space::Single(_)) {
                continue;
            }
            let root = storage_root(graph, x.index());
            if !out.contains(&root) {
                out.push(root);
            }
        }
        // An in-place update reads what it writes.
        if nodes[m].op.is_update() {
            let root = storage_root(graph, m);
            if !out.contains(&root) {
                out.push(root);
            }
        }
    }
    out
}

/// For each group, the values it stores in slots: materialised results
/// another group reads (or that are asked for), and the results of its
/// multi-result nodes.
pub(super) fn stored_values(graph: &Graph, fused: &Fused, outputs: &[usize]) -> Vec<Vec<usize>> {
    let nodes = graph.nodes();
    let n = nodes.len();
    let mut read_by: Vec<Vec<usize>> = vec![Vec::new(); n];
    for g in 0..fused.groups.len() {
        for x in group_reads(graph, fused, g) {
            read_by[x].push(g);
        }
    }
    fused
        .groups
        .iter()
        .enumerate()
        .map(|(g, group)| {
            let mut out = Vec::new();
            for &r in &group.roots {
                match &nodes[r].op {
                    op if op.is_update() => {}
                    _ if !nodes[r].results.is_empty() => {
                        out.extend(fused.results[r].iter().copied())
                    }
                    _ => {
                        let asked = outputs.iter().any(|&o| storage_root(graph, o) == r);
                        if asked || read_by[r].iter().any(|&h| h != g) {
                            out.push(r);
                        }
                    }
                }
            }
            out
        })
        .collect()
}
