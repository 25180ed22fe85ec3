//! Describing each fused group's kernels, once the plan has given every
//! stored value its buffer: the nodes of an elementwise, reduction or GEMM
//! group (a matrix product or a convolution) become one kernel's program
//! (inlined producers as expressions, stored inputs as strided loads,
//! materialised results as stores); the other groups are described by
//! their own kinds (see [`KernelDescription`]). The plan builds the
//! descriptions.

use std::collections::HashMap;

use kiln_backend::codegen::{
    ConvKernel, ConvSpec, Epilogue, Expr, GemmKernel, GemmLoad, GemmSpec, KernelDescription,
    MapKernel, Operand, Program, ReduceKernel, Store,
};
use kiln_backend::{Buffer, DType, Device, MatmulVariant, StridedLayout, UnaryOp};

use crate::conv_ops::node_conv_geometry;
use crate::error::{GraphError, Result};
use crate::fusion::{storage_root, Class, Fused, Space};
use crate::graph::{Graph, Op};

mod own;
mod reduce;
use own::{single, updates};

/// The buffer of every stored value.
pub(crate) struct Storage<'g> {
    device: Device,
    graph: &'g Graph,
    buffers: Vec<Option<Buffer>>,
}

impl<'g> Storage<'g> {
    pub fn new(device: &Device, graph: &'g Graph, buffers: Vec<Option<Buffer>>) -> Self {
        Self {
            device: device.clone(),
            graph,
            buffers,
        }
    }

    /// The buffer holding node `i`'s value (its storage root's).
    pub fn buffer(&self, i: usize) -> Result<Buffer> {
        let root = storage_root(self.graph, i);
        self.buffers[root].clone().ok_or_else(|| {
            GraphError::Internal(format!(
                "internal: {} has no storage",
                self.graph.describe(self.graph.id_at(root))
            ))
        })
    }

    /// A buffer for a result nothing reads (an unused batch statistic).
    fn scratch(&self, numel: usize) -> Result<Buffer> {
        Ok(self
            .device
            .alloc("unused result", numel.max(1), DType::F32)?)
    }
}

/// The value of a uniform constant: one number repeated.
fn uniform(op: &Op) -> Option<f32> {
    match op {
        Op::Const(v) if v.iter().all(|x| x.to_bits() == v[0].to_bits()) => Some(v[0]),
        _ => None,
    }
}

/// A unit reshape (see `fusion::unit_reshape`) being looked through: values
/// inside it are computed in the index space of its input, `from`, then seen
/// as `to`, then as whatever encloses it.
type Frame = Vec<(Vec<usize>, Vec<usize>)>;

/// The strides of `l` (over `from`) seen over `to`, which has the same axes
/// but for axes of size 1.
fn unit_reshape(l: StridedLayout, to: &[usize]) -> StridedLayout {
    let mut strides = l
        .shape
        .iter()
        .zip(&l.strides)
        .filter(|(&d, _)| d != 1)
        .map(|(_, &s)| s);
    StridedLayout {
        offset: l.offset,
        shape: to.to_vec(),
        strides: to
            .iter()
            .map(|&d| {
                if d == 1 {
                    0
                } else {
                    strides.next().unwrap_or(0)
                }
            })
            .collect(),
    }
}

/// Builds the program of one group over its iteration space: members are
/// computed where they are needed (recursively, memoised per frame), any
/// other value is loaded.
struct Builder<'a, 'g> {
    graph: &'g Graph,
    storage: &'a Storage<'g>,
    shape: Vec<usize>,
    members: &'a [usize],
    program: Program,
    exprs: HashMap<(usize, usize), usize>,
    frames: Vec<Frame>,
    frame: usize,
    buffers: Vec<Buffer>,
    layouts: Vec<(usize, StridedLayout)>,
    anchor: Option<usize>,
}

impl<'a, 'g> Builder<'a, 'g> {
    fn new(
        graph: &'g Graph,
        storage: &'a Storage<'g>,
        shape: &[usize],
        members: &'a [usize],
    ) -> Self {
        Self {
            graph,
            storage,
            shape: shape.to_vec(),
            members,
            program: Program::default(),
            exprs: HashMap::new(),
            frames: vec![Vec::new()],
            frame: 0,
            buffers: Vec::new(),
            layouts: Vec::new(),
            anchor: None,
        }
    }

    /// `l`, a layout over some node's shape in the current frame, seen over
    /// the group's iteration space.
    fn to_space(&self, l: StridedLayout, what: &str) -> Result<StridedLayout> {
        let mut l = l;
        for (from, to) in &self.frames[self.frame] {
            l = unit_reshape(l.broadcast_to(what, from)?, to);
        }
        Ok(l.broadcast_to(what, &self.shape)?)
    }

    /// The layout through which node `x` is read: contiguous over its
    /// storage, or a view (slice, transpose) of what it reads.
    fn layout_of(&self, x: usize) -> Result<StridedLayout> {
        let node = &self.graph.nodes()[x];
        let what = self.graph.describe(self.graph.id_at(x));
        if self.members.contains(&x) {
            let inner = self.layout_of(node.inputs[0].index())?;
            return Ok(match &node.op {
                Op::Slice { axis, start, .. } => {
                    let mut l = inner;
                    l.offset += start * l.strides[*axis];
                    l.shape = node.shape.clone();
                    l
                }
                Op::Permute(perm) => inner.permuted(&what, perm)?,
                Op::Reshape => unit_reshape(inner, &node.shape),
                _ => {
                    return Err(GraphError::Internal(format!(
                        "internal: {what} is read through a layout but is no view"
                    )))
                }
            });
        }
        Ok(StridedLayout::contiguous(&node.shape))
    }

    /// The operand index of node `x`'s value, read at the current element.
    fn operand(&mut self, x: usize) -> Result<usize> {
        let mut root = x;
        while self.members.contains(&root) {
            root = self.graph.nodes()[root].inputs[0].index();
        }
        let buffer = self.storage.buffer(root)?;
        let what = self.graph.describe(self.graph.id_at(x));
        let layout = self.to_space(self.layout_of(x)?, &what)?;
        let b = match self.buffers.iter().position(|b| b.same(&buffer)) {
            Some(b) => b,
            None => {
                self.buffers.push(buffer);
                self.buffers.len() - 1
            }
        };
        if let Some(k) = self
            .layouts
            .iter()
            .position(|(bb, l)| *bb == b && *l == layout)
        {
            return Ok(k);
        }
        self.layouts.push((b, layout));
        Ok(self.layouts.len() - 1)
    }

    /// The expression of node `x`'s value at the current element: computed
    /// when `x` is a member, loaded otherwise.
    fn value(&mut self, x: usize) -> Result<usize> {
        if let Some(&e) = self.exprs.get(&(x, self.frame)) {
            return Ok(e);
        }
        let node = self.graph.nodes()[x].clone();
        let input = |k: usize| node.inputs[k].index();
        let e = if !self.members.contains(&x) {
            match uniform(&node.op) {
                Some(c) => self.program.push(Expr::Scalar(c)),
                None => {
                    let k = self.operand(x)?;
                    self.program.push(Expr::Load(k))
                }
            }
        } else {
            match &node.op {
                Op::Unary(op) => {
                    let a = self.value(input(0))?;
                    self.program.push(Expr::Unary(*op, a))
                }
                Op::Binary(op) => {
                    let (a, b) = (self.value(input(0))?, self.value(input(1))?);
                    self.program.push(Expr::Binary(*op, a, b))
                }
                Op::Select => {
                    let c = self.value(input(0))?;
                    let (a, b) = (self.value(input(1))?, self.value(input(2))?);
                    self.program.push(Expr::Select(c, a, b))
                }
                Op::Expand => self.value(input(0))?,
                Op::Dropout { rate, seed } => {
                    let v = self.value(input(0))?;
                    let step = self.operand(input(1))?;
                    self.program.push(Expr::Dropout {
                        x: v,
                        rate: *rate,
                        seed: *seed,
                        step,
                    })
                }
                Op::Slice { .. } | Op::Permute(_) => {
                    let k = self.operand(x)?;
                    self.program.push(Expr::Load(k))
                }
                Op::Reshape => {
                    // Look through the reshape: its input in a frame of its own.
                    let mut frame = vec![(
                        self.graph.shape(node.inputs[0]).to_vec(),
                        node.shape.clone(),
                    )];
                    frame.extend(self.frames[self.frame].iter().cloned());
                    let outer = self.frame;
                    self.frame = match self.frames.iter().position(|f| *f == frame) {
                        Some(f) => f,
                        None => {
                            self.frames.push(frame);
                            self.frames.len() - 1
                        }
                    };
                    let v = self.value(input(0));
                    self.frame = outer;
                    v?
                }
                Op::MatMul { .. } | Op::Conv2d { .. } => match self.anchor {
                    Some(_) if self.frame == 0 => self.program.push(Expr::Anchor),
                    Some(_) => {
                        return Err(GraphError::Internal(
                            "internal: a product read through a reshape in its own epilogue".into(),
                        ))
                    }
                    None => self.program.push(Expr::Scalar(0.0)),
                },
                _ => {
                    return Err(GraphError::Internal(format!(
                        "internal: {} is not computed elementwise",
                        self.graph.describe(self.graph.id_at(x))
                    )))
                }
            }
        };
        self.exprs.insert((x, self.frame), e);
        Ok(e)
    }

    fn operands(&self) -> Vec<Operand> {
        self.layouts
            .iter()
            .map(|(b, l)| Operand {
                buffer: self.buffers[*b].clone(),
                layout: l.clone(),
            })
            .collect()
    }

    /// The program built, what it reads, and `stores`.
    fn epilogue(&self, stores: Vec<Store>) -> Epilogue {
        Epilogue {
            program: self.program.clone(),
            operands: self.operands(),
            stores,
        }
    }

    /// A label naming the ops of the kernel, so a profile reads.
    fn label(&self, kind: &str) -> String {
        let mut names: Vec<String> = Vec::new();
        for &m in self.members {
            let op = &self.graph.nodes()[m].op;
            let name = match op {
                Op::Expand | Op::Output(_) | Op::Reshape => continue,
                other => other.name(),
            };
            if names.last() != Some(&name) {
                names.push(name);
            }
        }
        let joined = names.join("+");
        match joined.char_indices().nth(60) {
            Some((cut, _)) => format!("{kind}:{}…", &joined[..cut]),
            None => format!("{kind}:{joined}"),
        }
    }
}

/// The kernels of group `g`, described; `stored` lists the values it
/// stores in slots.
pub(crate) fn describe_group(
    device: &Device,
    graph: &Graph,
    fused: &Fused,
    g: usize,
    stored: &[usize],
    storage: &Storage<'_>,
) -> Result<Vec<KernelDescription>> {
    let group = &fused.groups[g];
    let nodes = graph.nodes();
    let shape = match &group.space {
        Space::Single(s) => return single(device, graph, fused, *s, storage),
        Space::Updates(steps) => return updates(device, graph, steps, storage),
        Space::Map(s) | Space::Reduce { shape: s, .. } | Space::Gemm { shape: s, .. } => s.clone(),
    };
    let numel: usize = shape.iter().product();
    let mut b = Builder::new(graph, storage, &shape, &group.members);
    // The product of a GEMM group, unless its inner dimension is empty
    // (then the product is zeros and the group an elementwise kernel).
    let gemm = match &group.space {
        Space::Gemm { anchor, .. } => match nodes[*anchor].op {
            Op::MatMul { .. } => (gemm_shape(graph, *anchor, &shape).0 .2 > 0).then_some(*anchor),
            _ => Some(*anchor),
        },
        _ => None,
    };
    b.anchor = gemm;
    // Stores of materialised elementwise results and the product.
    let mut stores: Vec<Store> = Vec::new();
    for &v in stored {
        // Results of reductions are written by the reduction itself.
        if matches!(nodes[v].op, Op::Output(_)) || fused.classes[v] == Class::Reduction {
            continue;
        }
        stores.push(Store {
            expr: b.value(v)?,
            buffer: storage.buffer(v)?,
            layout: StridedLayout::contiguous(&nodes[v].shape),
        });
    }
    let mut kernels = in_place_updates(&mut b, fused, g, &mut stores)?;
    let reductions = reduce::reductions(&mut b, fused, &group.roots)?;
    let has_work = numel > 0 && !stores.is_empty();
    let description: Option<KernelDescription> = match &group.space {
        Space::Gemm { anchor, .. } if gemm.is_some() && has_work => {
            let kind = match nodes[*anchor].op {
                Op::Conv2d { .. } => "conv",
                _ => "gemm",
            };
            let label = b.label(kind);
            let epilogue = b.epilogue(stores);
            Some(anchor_kernel(
                graph, *anchor, label, &shape, storage, epilogue,
            )?)
        }
        // A map, or a product over an empty inner dimension: zeros.
        Space::Map(_) | Space::Gemm { .. } if has_work => {
            let label = b.label("map");
            Some(MapKernel::over(&label, &shape, b.epilogue(stores)).into())
        }
        Space::Reduce { axes, .. } => {
            let outputs: usize = (0..shape.len())
                .filter(|d| !axes.contains(d))
                .map(|d| shape[d])
                .product();
            (outputs > 0).then(|| {
                ReduceKernel {
                    label: b.label("reduce"),
                    shape: shape.clone(),
                    axes: axes.clone(),
                    reductions,
                    epilogue: b.epilogue(stores),
                }
                .into()
            })
        }
        _ => None,
    };
    // The group's own kernel runs before the batch counters it brings.
    kernels.splice(0..0, description);
    Ok(kernels)
}

/// The in-place updates among group `g`'s roots (assignments, accumulators
/// and running statistics over the group's own shape) as stores into what
/// they update; returns the kernels that count batches for running
/// statistics.
fn in_place_updates(
    b: &mut Builder<'_, '_>,
    fused: &Fused,
    g: usize,
    stores: &mut Vec<Store>,
) -> Result<Vec<KernelDescription>> {
    let (graph, storage) = (b.graph, b.storage);
    let group = &fused.groups[g];
    let nodes = graph.nodes();
    let mut extra = Vec::new();
    for &r in &group.roots {
        let node = &nodes[r];
        let x = |k: usize| node.inputs[k].index();
        let mut store = |expr: usize, into: usize| -> Result<()> {
            stores.push(Store {
                expr,
                buffer: storage.buffer(into)?,
                layout: StridedLayout::contiguous(&node.shape),
            });
            Ok(())
        };
        match (&node.op, fused.classes[r]) {
            (Op::Assign, _) => store(b.value(x(1))?, x(0))?,
            (Op::Accumulate { keep, scale }, Class::Update) => {
                let acc = b.value(x(0))?;
                let v = b.value(x(1))?;
                store(axpby(&mut b.program, acc, v, *keep, *scale), x(0))?;
            }
            (Op::RunningStats { keep, var_factor }, _) if matches!(group.space, Space::Map(_)) => {
                for (running, batch, factor) in [(0, 2, 1.0), (1, 3, *var_factor)] {
                    let old = b.value(x(running))?;
                    let new = b.value(x(batch))?;
                    let new = b.program.push(Expr::Unary(UnaryOp::Scale(factor), new));
                    store(
                        axpby(&mut b.program, old, new, *keep, 1.0 - keep),
                        x(running),
                    )?;
                }
                if node.inputs.len() == 5 {
                    extra.push(count_up(storage.buffer(x(4))?));
                }
            }
            _ => {}
        }
    }
    Ok(extra)
}

/// The kernel of a GEMM group: its anchor's product (a matrix product or a
/// convolution pass) with the group's program as its epilogue.
fn anchor_kernel(
    graph: &Graph,
    anchor: usize,
    label: String,
    shape: &[usize],
    storage: &Storage<'_>,
    epilogue: Epilogue,
) -> Result<KernelDescription> {
    let node = &graph.nodes()[anchor];
    let a = storage.buffer(node.inputs[0].index())?;
    let b = storage.buffer(node.inputs[1].index())?;
    if let Op::Conv2d { pass, splits, .. } = node.op {
        let spec = ConvSpec {
            pass,
            geometry: node_conv_geometry(graph, anchor)?,
            a,
            b,
            splits,
        };
        return Ok(ConvKernel {
            label,
            spec,
            epilogue,
        }
        .into());
    }
    let ((m, n, k), [(lda, bsa, ta), (ldb, bsb, tb)]) = gemm_shape(graph, anchor, shape);
    let spec = GemmSpec {
        m,
        n,
        k,
        shape: shape.to_vec(),
        a: GemmLoad {
            buffer: a,
            offset: 0,
            row_stride: lda,
            batch_stride: bsa,
            transposed: ta,
        },
        b: GemmLoad {
            buffer: b,
            offset: 0,
            row_stride: ldb,
            batch_stride: bsb,
            transposed: tb,
        },
        variant: MatmulVariant::Auto,
    };
    Ok(GemmKernel {
        label,
        spec,
        epilogue,
    }
    .into())
}

/// `keep·acc + scale·v`.
fn axpby(p: &mut Program, acc: usize, v: usize, keep: f32, scale: f32) -> usize {
    let a = p.push(Expr::Unary(UnaryOp::Scale(keep), acc));
    let s = p.push(Expr::Unary(UnaryOp::Scale(scale), v));
    p.push(Expr::Binary(kiln_backend::BinaryOp::Add, a, s))
}

/// `count[0] += 1`: a batch counter.
fn count_up(count: Buffer) -> KernelDescription {
    let mut program = Program::default();
    let c = program.push(Expr::Load(0));
    let e = program.push(Expr::Unary(UnaryOp::AddScalar(1.0), c));
    let layout = StridedLayout::contiguous(&[1]);
    let epilogue = Epilogue {
        program,
        operands: vec![Operand {
            buffer: count.clone(),
            layout: layout.clone(),
        }],
        stores: vec![Store {
            expr: e,
            buffer: count,
            layout,
        }],
    };
    MapKernel::over("map:count", &[1], epilogue).into()
}

/// How a product reads its operands: (rows, columns, inner size), and for
/// A and B (row stride, batch stride, transposed). A rank-2 operand is
/// shared by every batch.
type GemmShape = ((usize, usize, usize), [(usize, usize, bool); 2]);

fn gemm_shape(graph: &Graph, anchor: usize, shape: &[usize]) -> GemmShape {
    let node = &graph.nodes()[anchor];
    let Op::MatMul { trans_a, trans_b } = node.op else {
        unreachable!("a GEMM group is anchored at a matrix product");
    };
    let (sa, sb) = (graph.shape(node.inputs[0]), graph.shape(node.inputs[1]));
    let r = shape.len();
    let k = if trans_a {
        sa[sa.len() - 2]
    } else {
        sa[sa.len() - 1]
    };
    let strides = |s: &[usize], t: bool| {
        let batch = if s.len() == 2 {
            0
        } else {
            s[s.len() - 2] * s[s.len() - 1]
        };
        (s[s.len() - 1], batch, t)
    };
    (
        (shape[r - 2], shape[r - 1], k),
        [strides(sa, trans_a), strides(sb, trans_b)],
    )
}
