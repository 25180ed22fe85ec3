//! The fusion pass: the chains the issue names compile to one kernel each;
//! random graphs of maps, broadcasts and reductions give the same numbers
//! fused and unfused, and both match an f64 evaluation; every generated
//! kernel parses and validates with naga.

use kiln_backend::{BinaryOp, Device, ReduceOp, UnaryOp};
use kiln_graph::{Graph, NodeId, Op, ParamStore, Plan, PlanOptions};

fn device() -> Device {
    Device::auto().expect("an adapter: apt-get install -y libvulkan1 mesa-vulkan-drivers")
}

fn compile(device: &Device, g: &Graph, outputs: &[NodeId], fusion: bool) -> Plan {
    Plan::compile_with(device, g, outputs, PlanOptions { fusion }).unwrap()
}

/// Every generated kernel of `plan` parses and validates with naga, with
/// the capabilities the device was opened with (subgroups where it has
/// them: the block kernels share loads across lanes).
fn validate(plan: &Plan) {
    let capabilities = match device().summary().subgroups {
        true => naga::valid::Capabilities::SUBGROUP,
        false => naga::valid::Capabilities::empty(),
    } | naga::valid::Capabilities::default();
    let prelude = kiln_backend::shaders::prelude();
    for k in plan.kernels() {
        let Some(src) = k.source() else { continue };
        let full = format!("{prelude}\n{src}");
        let module = naga::front::wgsl::parse_str(&full).unwrap_or_else(|e| {
            panic!("{} does not parse:\n{}", k.label(), e.emit_to_string(&full))
        });
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities)
            .validate(&module)
            .unwrap_or_else(|e| {
                panic!(
                    "{} does not validate:\n{}",
                    k.label(),
                    e.emit_to_string(&full)
                )
            });
    }
}

/// x·W + b → relu → dropout, the dense layer of the tutorial's MLP.
fn dense_relu_dropout(g: &mut Graph, x: NodeId, w: NodeId, b: NodeId) -> NodeId {
    let z = g.matmul(x, w, false, false).unwrap();
    let z = g.add(z, b).unwrap();
    let h = g.unary(UnaryOp::Relu, z).unwrap();
    let step = g.input("step", &[1]);
    g.dropout(h, 0.3, 5, step).unwrap()
}

#[test]
fn dense_bias_relu_dropout_is_one_kernel() {
    let dev = device();
    let mut g = Graph::new();
    let x = g.input("x", &[64, 30]);
    let w = g.input("w", &[30, 128]);
    let b = g.input("b", &[128]);
    let y = dense_relu_dropout(&mut g, x, w, b);
    let plan = compile(&dev, &g, &[y], true);
    validate(&plan);
    assert_eq!(plan.stats().dispatches, 1, "{:?}", labels(&plan));
    assert!(plan.kernels()[0]
        .label()
        .starts_with("gemm:matmul+add+relu+dropout"));
    assert_eq!(compile(&dev, &g, &[y], false).stats().dispatches, 4);
}

#[test]
fn its_backward_chain_is_one_kernel_beside_the_products() {
    let dev = device();
    let mut g = Graph::new();
    let x = g.input("x", &[64, 30]);
    let w = g.input("w", &[30, 128]);
    let b = g.input("b", &[128]);
    let y = dense_relu_dropout(&mut g, x, w, b);
    let up = g.input("dy", &[64, 128]);
    let grads = g.backward(&[(y, up)], &[x, w, b]).unwrap();
    let plan = compile(&dev, &g, &grads, true);
    validate(&plan);
    let names = labels(&plan);
    // Dropout's and relu's backward run in one kernel: the epilogue of the
    // forward product, which need not store its result. Then the bias
    // gradient (a column sum) and the two backward products.
    assert_eq!(plan.stats().dispatches, 4, "{names:?}");
    let chain: Vec<&String> = names
        .iter()
        .filter(|n| n.contains("dropout") || n.contains("step"))
        .collect();
    assert_eq!(chain.len(), 1, "{names:?}");
    assert!(chain[0].contains("dropout+step+mul"), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("map:")), "{names:?}");
}

#[test]
fn batch_norm_apply_relu_add_is_one_kernel() {
    let dev = device();
    let mut params = ParamStore::new(&dev);
    for (name, v) in [
        ("mean", 0.1f32),
        ("var", 1.5),
        ("gamma", 0.8),
        ("beta", 0.2),
    ] {
        params.insert(name, &[v; 16], &[16]).unwrap();
    }
    let mut g = Graph::new();
    let x = g.input("x", &[4, 16, 5, 5]);
    let skip = g.input("skip", &[4, 16, 5, 5]);
    let p = |g: &mut Graph, n: &str| g.frozen_param(&params, n).unwrap();
    let (m, v, ga, be) = (
        p(&mut g, "mean"),
        p(&mut g, "var"),
        p(&mut g, "gamma"),
        p(&mut g, "beta"),
    );
    let y = g.batch_norm(x, m, v, Some(ga), Some(be), 1, 1e-5).unwrap();
    let y = g.unary(UnaryOp::Relu, y).unwrap();
    let y = g.add(y, skip).unwrap();
    let plan = compile(&dev, &g, &[y], true);
    validate(&plan);
    assert_eq!(plan.stats().dispatches, 1, "{:?}", labels(&plan));
    assert!(compile(&dev, &g, &[y], false).stats().dispatches >= 8);
}

fn labels(plan: &Plan) -> Vec<String> {
    plan.kernels()
        .iter()
        .map(|k| k.label().to_string())
        .collect()
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A random graph over inputs of shapes `[A, B, C]`, `[B, C]`, `[A, 1, C]`
/// and `[C]`: elementwise ops with broadcasting, selects, reductions kept as
/// size-1 axes, unit reshapes; several outputs. Returns the graph, its
/// inputs and outputs.
/// A graph, its inputs (name and shape) and its outputs.
type RandomGraph = (Graph, Vec<(String, Vec<usize>)>, Vec<NodeId>);

fn random_graph(rng: &mut Rng) -> RandomGraph {
    let (a, b, c) = (3 + rng.below(3), 2 + rng.below(4), 4 + rng.below(5));
    let shapes = [vec![a, b, c], vec![b, c], vec![a, 1, c], vec![c]];
    let mut g = Graph::new();
    let mut inputs = Vec::new();
    let mut pool: Vec<NodeId> = Vec::new();
    for (i, s) in shapes.iter().enumerate() {
        let name = format!("in{i}");
        pool.push(g.input(&name, s));
        inputs.push((name, s.clone()));
    }
    let unary = [
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Square,
        UnaryOp::Scale(0.7),
        UnaryOp::AddScalar(0.3),
        UnaryOp::Relu,
        UnaryOp::Abs,
    ];
    let binary = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Max];
    for _ in 0..12 + rng.below(10) {
        let pick =
            |rng: &mut Rng, pool: &[NodeId]| pool[pool.len() - 1 - rng.below(pool.len().min(6))];
        let x = pick(rng, &pool);
        let node = match rng.below(6) {
            0 | 1 => g.unary(unary[rng.below(unary.len())], x).ok(),
            2 | 3 => {
                let y = pick(rng, &pool);
                g.binary(binary[rng.below(binary.len())], x, y).ok()
            }
            4 => {
                let rank = g.shape(x).len();
                let axis = rng.below(rank) as i64;
                let op = [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max][rng.below(3)];
                g.reduce(op, x, &[axis], true).ok()
            }
            _ => {
                let (y, z) = (pick(rng, &pool), pick(rng, &pool));
                let zero = g.scalar(0.0);
                let cond = g.binary(BinaryOp::Gt, x, zero).ok();
                cond.and_then(|c| g.select(c, y, z).ok())
            }
        };
        if let Some(n) = node {
            if !pool.contains(&n) {
                pool.push(n);
            }
        }
    }
    let outputs: Vec<NodeId> = pool[4..].iter().rev().take(3).copied().collect();
    (g, inputs, outputs)
}

/// f64 evaluation of the ops `random_graph` uses.
fn eval(g: &Graph, feeds: &[(String, Vec<f64>)]) -> Vec<Vec<f64>> {
    let mut v: Vec<Vec<f64>> = Vec::new();
    let coords = |mut i: usize, s: &[usize]| {
        let mut c = vec![0; s.len()];
        for d in (0..s.len()).rev() {
            c[d] = i % s[d];
            i /= s[d];
        }
        c
    };
    let read = |data: &[f64], s: &[usize], c: &[usize]| {
        let lead = c.len() - s.len();
        let mut at = 0;
        for (d, &size) in s.iter().enumerate() {
            at = at * size + if size == 1 { 0 } else { c[lead + d] };
        }
        data[at]
    };
    for node in g.nodes() {
        let x = |k: usize| &v[node.inputs[k].index()];
        let xs = |k: usize| g.shape(node.inputs[k]);
        let n = node.numel();
        let out: Vec<f64> = match &node.op {
            Op::Input(name) => feeds.iter().find(|(f, _)| f == name).unwrap().1.clone(),
            Op::Const(c) => c.iter().map(|&a| a as f64).collect(),
            Op::Unary(op) => x(0).iter().map(|&a| op.reference(a)).collect(),
            Op::Binary(op) => (0..n)
                .map(|i| {
                    let c = coords(i, &node.shape);
                    op.reference(read(x(0), xs(0), &c), read(x(1), xs(1), &c))
                })
                .collect(),
            Op::Select => (0..n)
                .map(|i| {
                    let c = coords(i, &node.shape);
                    if read(x(0), xs(0), &c) != 0.0 {
                        read(x(1), xs(1), &c)
                    } else {
                        read(x(2), xs(2), &c)
                    }
                })
                .collect(),
            Op::Reduce { op, axes } => {
                let s = xs(0);
                let init = if *op == ReduceOp::Max {
                    f64::NEG_INFINITY
                } else {
                    0.0
                };
                let mut acc = vec![init; n];
                for (i, &a) in x(0).iter().enumerate() {
                    let mut c = coords(i, s);
                    for &ax in axes {
                        c[ax] = 0;
                    }
                    let o = read(
                        &(0..n).map(|k| k as f64).collect::<Vec<_>>(),
                        &node.shape,
                        &c,
                    ) as usize;
                    acc[o] = if *op == ReduceOp::Max {
                        acc[o].max(a)
                    } else {
                        acc[o] + a
                    };
                }
                if *op == ReduceOp::Mean {
                    let count: usize = axes.iter().map(|&a| s[a]).product();
                    acc.iter_mut().for_each(|a| *a /= count as f64);
                }
                acc
            }
            other => panic!("no f64 rule for {other:?}"),
        };
        v.push(out);
    }
    v
}

#[test]
fn random_graphs_agree_fused_unfused_and_with_f64() {
    let dev = device();
    let mut rng = Rng(0x5eed);
    let mut fused_kernels = 0;
    let mut unfused_kernels = 0;
    for case in 0..40 {
        let (g, inputs, outputs) = random_graph(&mut rng);
        let values: Vec<(String, Vec<f32>)> = inputs
            .iter()
            .map(|(n, s)| {
                let count: usize = s.iter().product();
                let v = (0..count)
                    .map(|_| (rng.unit() * 2.0 - 1.0) as f32)
                    .collect();
                (n.clone(), v)
            })
            .collect();
        let feeds: Vec<(&str, &[f32])> = values
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        let mut fused = compile(&dev, &g, &outputs, true);
        let mut unfused = compile(&dev, &g, &outputs, false);
        validate(&fused);
        fused_kernels += fused.stats().dispatches;
        unfused_kernels += unfused.stats().dispatches;
        let a = fused.run(&feeds).unwrap();
        let b = unfused.run(&feeds).unwrap();
        let f64_feeds: Vec<(String, Vec<f64>)> = values
            .iter()
            .map(|(n, v)| (n.clone(), v.iter().map(|&x| x as f64).collect()))
            .collect();
        let want = eval(&g, &f64_feeds);
        for (k, &o) in outputs.iter().enumerate() {
            let w = &want[o.index()];
            for i in 0..w.len() {
                let tol = 1e-4 * (1.0 + w[i].abs());
                assert!(
                    (a[k][i] as f64 - w[i]).abs() <= tol,
                    "case {case} output {k}[{i}]: fused {} vs f64 {}",
                    a[k][i],
                    w[i]
                );
                assert!(
                    (b[k][i] as f64 - w[i]).abs() <= tol,
                    "case {case} output {k}[{i}]: unfused {} vs f64 {}",
                    b[k][i],
                    w[i]
                );
            }
        }
    }
    assert!(
        fused_kernels * 2 < unfused_kernels,
        "fusion should at least halve the kernels: {fused_kernels} vs {unfused_kernels}"
    );
}
