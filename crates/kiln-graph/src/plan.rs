//! Compiling a graph into a [`Plan`]: only the nodes the outputs and the
//! parameter updates need; fused into kernels by rule (see `fusion.rs`);
//! scheduled in dependency order; every stored intermediate given a slot in
//! a pool of buffers shared by liveness; every kernel (pipeline, bind group,
//! parameter words) created once. [`Plan::run`] then writes the inputs,
//! encodes every dispatch into one compute pass and submits once.

use std::collections::HashMap;

use kiln_backend::codegen::KernelDescription;
use kiln_backend::{Buffer, DType, Device, Kernel, Tensor};

use crate::error::{GraphError, Result};
use crate::fusion::{self, storage_root, Fused};
use crate::graph::{Graph, NodeId, Op};
use crate::kernels::{describe_group, Storage};

mod order;
use order::{group_reads, schedule, stored_values};

/// How a plan is compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanOptions {
    /// Fuse elementwise chains, epilogues and prologues into generated
    /// kernels (on unless the environment sets `KILN_FUSION=0`). Off, every
    /// op gets a kernel of its own: for debugging and equality tests.
    pub fusion: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            fusion: std::env::var("KILN_FUSION").map_or(true, |v| v != "0"),
        }
    }
}

/// Sizes and counts of a compiled plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanStats {
    /// Kernels encoded per run.
    pub dispatches: usize,
    /// Bytes of the slot buffers that hold intermediates (the planned peak).
    pub planned_bytes: u64,
    /// What the intermediates would take with a buffer each.
    pub intermediate_bytes: u64,
    /// Number of slot buffers.
    pub slots: usize,
}

/// Device memory a plan holds, by kind (see [`Plan::memory`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryPlan {
    /// The slot buffers of intermediate values: the planned peak.
    pub intermediate_bytes: u64,
    /// Buffers of fed inputs and constants.
    pub input_bytes: u64,
    /// Parameters and buffers the plan reads (persistent, shared by plans).
    pub param_bytes: u64,
}

impl MemoryPlan {
    /// Everything the plan holds.
    pub fn total_bytes(&self) -> u64 {
        self.intermediate_bytes + self.input_bytes + self.param_bytes
    }
}

/// What [`Plan::layout`] decides.
struct Layout {
    live: Vec<bool>,
    fused: Fused,
    order: Vec<usize>,
    stored: Vec<Vec<usize>>,
    slot_sizes: Vec<u64>,
    slot_of: Vec<Option<usize>>,
    intermediate_bytes: u64,
    outputs_idx: Vec<usize>,
}

/// A compiled graph, replayed by [`Plan::run`].
pub struct Plan {
    device: Device,
    kernels: Vec<Kernel>,
    inputs: Vec<(String, Buffer, Vec<usize>)>,
    outputs: Vec<(Buffer, usize)>,
    stats: PlanStats,
}

fn bytes_of(numel: usize) -> u64 {
    numel.max(1) as u64 * 4
}

/// Every value that gets a buffer (leaves and stored intermediates) fits
/// one storage binding of the adapter: found here, before anything is
/// allocated or submitted, it is an error naming the tensor rather than a
/// validation failure inside wgpu.
fn check_binding_sizes(
    device: &Device,
    graph: &Graph,
    live: &[bool],
    stored: &[Vec<usize>],
) -> Result<()> {
    let limit = device.summary().max_storage_binding_bytes;
    let nodes = graph.nodes();
    let leaf = |i: usize| matches!(nodes[i].op, Op::Input(_) | Op::Param { .. } | Op::Const(_));
    let buffered = (0..nodes.len())
        .filter(|&i| live[i] && leaf(i))
        .chain(stored.iter().flatten().copied());
    for i in buffered {
        let bytes = bytes_of(nodes[i].numel());
        if bytes > limit {
            let name = match &nodes[i].op {
                Op::Input(name) => format!(" {name:?}"),
                Op::Param { param, .. } => format!(" {:?}", param.name()),
                _ => String::new(),
            };
            return Err(kiln_backend::BackendError::BindingTooLarge {
                what: format!(
                    "{}{name} ({} MiB)",
                    graph.describe(graph.id_at(i)),
                    bytes >> 20
                ),
                bytes,
                limit,
            }
            .into());
        }
    }
    Ok(())
}

impl Plan {
    /// Compiles the part of `graph` that `outputs` and every in-place update
    /// need, with the default [`PlanOptions`].
    pub fn compile(device: &Device, graph: &Graph, outputs: &[NodeId]) -> Result<Self> {
        Self::compile_with(device, graph, outputs, PlanOptions::default())
    }

    /// What compiling decides before anything is allocated: the fused
    /// groups in their order, what each stores, and the slot of every
    /// stored value (planned by liveness).
    fn layout(
        device: &Device,
        graph: &Graph,
        outputs: &[NodeId],
        options: PlanOptions,
    ) -> Result<Layout> {
        graph.check("Plan::compile", outputs)?;
        let nodes = graph.nodes();
        let n = nodes.len();
        let outputs_idx: Vec<usize> = outputs.iter().map(|o| o.index()).collect();
        for &o in &outputs_idx {
            if !nodes[o].results.is_empty() {
                return Err(GraphError::Usage(format!(
                    "output {} ({}) has several results: ask for its Output nodes",
                    o,
                    graph.describe(graph.id_at(o))
                )));
            }
        }
        // Live nodes: ancestors of the outputs and of the parameter updates.
        let mut live = vec![false; n];
        let mut stack: Vec<usize> = outputs_idx.clone();
        stack.extend((0..n).filter(|&i| nodes[i].op.is_update()));
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut live[i], true) {
                stack.extend(nodes[i].inputs.iter().map(|x| x.index()));
            }
        }
        // One less than the adapter's storage buffers: the parameter words.
        let max_buffers = (device.summary().max_storage_buffers_per_stage as usize)
            .saturating_sub(1)
            .max(4);
        let fused = fusion::fuse(graph, &live, &outputs_idx, options.fusion, max_buffers);
        let order = schedule(&fused)?;
        if std::env::var_os("KILN_FUSION_DEBUG").is_some() {
            for &g in &order {
                let group = &fused.groups[g];
                let describe = |v: &[usize]| -> Vec<String> {
                    v.iter()
                        .map(|&i| format!("{i}:{}", graph.describe(graph.id_at(i))))
                        .collect()
                };
                eprintln!(
                    "group {g} {:?}\n  members {:?}\n  roots {:?}",
                    group.space,
                    describe(&group.members),
                    describe(&group.roots)
                );
            }
        }

        // Which group reads each stored value last.
        let mut last_use = vec![0usize; n];
        for (p, &g) in order.iter().enumerate() {
            for x in group_reads(graph, &fused, g) {
                last_use[x] = last_use[x].max(p);
            }
        }
        for &o in &outputs_idx {
            last_use[storage_root(graph, o)] = usize::MAX;
        }
        let stored = stored_values(graph, &fused, &outputs_idx);
        check_binding_sizes(device, graph, &live, &stored)?;

        let mut slot_sizes: Vec<u64> = Vec::new();
        let mut slot_of: Vec<Option<usize>> = vec![None; n];
        let mut free_slots: Vec<usize> = Vec::new();
        let mut intermediate_bytes = 0;
        let mut expiring: HashMap<usize, Vec<usize>> = HashMap::new();
        for (p, &g) in order.iter().enumerate() {
            for &v in &stored[g] {
                let need = bytes_of(nodes[v].numel());
                intermediate_bytes += need;
                // Best fit among free slots, else grow the largest free one, else a new slot.
                let pick = free_slots
                    .iter()
                    .enumerate()
                    .filter(|(_, &s)| slot_sizes[s] >= need)
                    .min_by_key(|(_, &s)| slot_sizes[s])
                    .map(|(k, _)| k);
                let slot = match pick {
                    Some(k) => free_slots.swap_remove(k),
                    None => match free_slots
                        .iter()
                        .enumerate()
                        .max_by_key(|(_, &s)| slot_sizes[s])
                        .map(|(k, _)| k)
                    {
                        Some(k) => {
                            let s = free_slots.swap_remove(k);
                            slot_sizes[s] = need;
                            s
                        }
                        None => {
                            slot_sizes.push(need);
                            slot_sizes.len() - 1
                        }
                    },
                };
                slot_of[v] = Some(slot);
                if last_use[v] != usize::MAX {
                    expiring.entry(last_use[v].max(p)).or_default().push(slot);
                }
            }
            if let Some(done) = expiring.remove(&p) {
                free_slots.extend(done);
            }
        }
        Ok(Layout {
            live,
            fused,
            order,
            stored,
            slot_sizes,
            slot_of,
            intermediate_bytes,
            outputs_idx,
        })
    }

    /// The device memory a plan of `outputs` would hold, computed without
    /// allocating any: its intermediates (planned by liveness), its inputs
    /// and constants, and the parameters it reads.
    pub fn memory(
        device: &Device,
        graph: &Graph,
        outputs: &[NodeId],
        options: PlanOptions,
    ) -> Result<MemoryPlan> {
        let layout = Self::layout(device, graph, outputs, options)?;
        let mut m = MemoryPlan {
            intermediate_bytes: layout.slot_sizes.iter().sum(),
            ..MemoryPlan::default()
        };
        let mut seen = std::collections::HashSet::new();
        let live_nodes = graph.nodes().iter().zip(&layout.live).filter(|(_, &l)| l);
        for (node, _) in live_nodes {
            let bytes = bytes_of(node.numel());
            match &node.op {
                Op::Input(_) | Op::Const(_) => m.input_bytes += bytes,
                Op::Param { param, .. } if seen.insert(param.id()) => m.param_bytes += bytes,
                _ => {}
            }
        }
        Ok(m)
    }

    /// [`Plan::compile`] with explicit options.
    pub fn compile_with(
        device: &Device,
        graph: &Graph,
        outputs: &[NodeId],
        options: PlanOptions,
    ) -> Result<Self> {
        let Layout {
            live,
            fused,
            order,
            stored,
            slot_sizes,
            slot_of,
            intermediate_bytes,
            outputs_idx,
        } = Self::layout(device, graph, outputs, options)?;
        let nodes = graph.nodes();
        let n = nodes.len();
        // Storage: leaves own buffers, stored values get slots by liveness.
        let mut storage: Vec<Option<Buffer>> = vec![None; n];
        let mut inputs = Vec::new();
        for i in (0..n).filter(|&i| live[i]) {
            match &nodes[i].op {
                Op::Param { param, .. } => {
                    if !param.device().same(device) {
                        return Err(GraphError::WrongDevice(format!(
                            "parameter {:?} was created on another device than this plan's ({}): build a model's layers with the device it runs on",
                            param.name(),
                            device.name()
                        )));
                    }
                    storage[i] = Some(param.buffer().clone())
                }
                Op::Input(name) => {
                    let b = device.alloc(
                        &format!("input {name:?}"),
                        nodes[i].numel().max(1),
                        DType::F32,
                    )?;
                    inputs.push((name.clone(), b.clone(), nodes[i].shape.clone()));
                    storage[i] = Some(b);
                }
                Op::Const(values) => {
                    storage[i] = Some(
                        Tensor::from_f32(device, values, &[values.len()])?
                            .buffer()
                            .clone(),
                    )
                }
                _ => {}
            }
        }
        let slot_buffers: Vec<Buffer> = slot_sizes
            .iter()
            .enumerate()
            .map(|(k, &b)| device.alloc(&format!("plan slot {k}"), (b / 4) as usize, DType::F32))
            .collect::<std::result::Result<_, _>>()?;
        for i in 0..n {
            if let Some(s) = slot_of[i] {
                storage[i] = Some(slot_buffers[s].clone());
            }
        }
        let storage = Storage::new(device, graph, storage);

        let mut descriptions = Vec::new();
        for &g in &order {
            descriptions.extend(describe_group(
                device, graph, &fused, g, &stored[g], &storage,
            )?);
        }
        let kernels = build_in_parallel(device, &descriptions)?;
        let outputs = outputs_idx
            .iter()
            .map(|&o| Ok((storage.buffer(o)?, nodes[o].numel())))
            .collect::<Result<_>>()?;
        let stats = PlanStats {
            dispatches: kernels.len(),
            planned_bytes: slot_sizes.iter().sum(),
            intermediate_bytes,
            slots: slot_sizes.len(),
        };
        Ok(Self {
            device: device.clone(),
            kernels,
            inputs,
            outputs,
            stats,
        })
    }

    /// Times every kernel of the plan on its own: `reps` copies of it in one
    /// submission, waited for, five times; the median per copy. Returns
    /// (label, seconds) in plan order. Inputs keep whatever values they last
    /// had, and in-place updates are applied `5·reps` times: profile a
    /// throw-away model.
    pub fn profile(&self, reps: usize) -> Result<Vec<(String, f64)>> {
        let reps = reps.max(1);
        let mut out = Vec::new();
        for k in &self.kernels {
            let copies: Vec<&Kernel> = (0..reps).map(|_| k).collect();
            let mut times = Vec::new();
            for _ in 0..5 {
                let t = std::time::Instant::now();
                self.device.run(&copies)?;
                self.device.synchronize()?;
                times.push(t.elapsed().as_secs_f64() / reps as f64);
            }
            times.sort_by(f64::total_cmp);
            out.push((k.label().to_string(), times[2]));
        }
        Ok(out)
    }

    pub fn stats(&self) -> PlanStats {
        self.stats
    }

    /// The kernels of the plan, in the order they run.
    pub fn kernels(&self) -> &[Kernel] {
        &self.kernels
    }

    /// Names and shapes of the inputs the plan expects.
    pub fn input_shapes(&self) -> impl Iterator<Item = (&str, &[usize])> {
        self.inputs
            .iter()
            .map(|(n, _, s)| (n.as_str(), s.as_slice()))
    }

    /// Writes `feeds` (name, values), runs every kernel in one submission and
    /// returns the outputs' values in the order given at compile time.
    pub fn run(&mut self, feeds: &[(&str, &[f32])]) -> Result<Vec<Vec<f32>>> {
        for (name, buffer, shape) in &self.inputs {
            let expected: usize = shape.iter().product();
            let Some((_, values)) = feeds.iter().find(|(n, _)| n == name) else {
                return Err(GraphError::MissingInput {
                    name: name.clone(),
                    expected,
                    shape: shape.clone(),
                });
            };
            if values.len() != expected {
                return Err(GraphError::InputSize {
                    name: name.clone(),
                    got: values.len(),
                    expected,
                    shape: shape.clone(),
                });
            }
            if !values.is_empty() {
                self.device.write(buffer, 0, bytemuck::cast_slice(values))?;
            }
        }
        let kernels: Vec<&Kernel> = self.kernels.iter().collect();
        let reads: Vec<(&Buffer, u64)> = self
            .outputs
            .iter()
            .map(|(b, n)| (b, *n as u64 * 4))
            .collect();
        let raw = self.device.run_and_read(&kernels, &reads)?;
        Ok(raw
            .iter()
            .map(|bytes| {
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            })
            .collect())
    }
}

/// Builds every described kernel, in order, on up to
/// `available_parallelism` threads: creating pipelines is most of a first
/// step's time (WGSL parsed, validated and translated, then the driver's
/// own compiler on most GPUs), and distinct pipelines build independently.
fn build_in_parallel(device: &Device, order: &[KernelDescription]) -> Result<Vec<Kernel>> {
    let build = |d: &KernelDescription| -> Result<Kernel> { Ok(device.build(d)?) };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(order.len());
    let built: Vec<Result<Kernel>> = if threads <= 1 {
        order.iter().map(build).collect()
    } else {
        // Threads take kernels round-robin, so that each gets a share of the
        // heavy ones (products sit together in the order).
        let mut slots: Vec<Option<Result<Kernel>>> = order.iter().map(|_| None).collect();
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let build = &build;
                    scope.spawn(move || {
                        (t..order.len())
                            .step_by(threads)
                            .map(|k| (k, build(&order[k])))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for worker in workers {
                let done = worker
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p));
                for (k, result) in done {
                    slots[k] = Some(result);
                }
            }
        });
        slots.into_iter().flatten().collect()
    };
    built.into_iter().collect()
}
