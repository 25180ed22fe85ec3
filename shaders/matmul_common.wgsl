// Shared by the matmul kernels: bindings, the operand layout, and the epilogue.
// C[b] = act(alpha · op(A[b]) · op(B[b]) + beta · bias), where op transposes
// through strides (TRANS_A / TRANS_B) instead of copying, and the bias is read
// through its own row and column strides so a vector, a column or a full matrix
// broadcasts without being expanded. This file (after activations.wgsl) is prepended to each kernel; the
// kernel (or matmul_scalar_loads.wgsl) declares how A and B are read.

override TRANS_A: bool = false;
override TRANS_B: bool = false;
// 0 none, 1 relu, 2 sigmoid, 3 tanh
override ACT: u32 = 0u;
// Dropout of the result (the mask of random.wgsl's dropout kernel, indexed by
// C's flat element): params 20, 21 seed words, 22 keep, 23 scale.
override DROPOUT: bool = false;

// params: 0 M, 1 N, 2 K, 3 batch,
//       4 A offset, 5 A batch stride, 6 A row stride (of the stored matrix),
//       7 B offset, 8 B batch stride, 9 B row stride,
//       10 C offset, 11 C batch stride, 12 C row stride,
//       13 bias offset, 14 has bias, 15 bias row stride, 16 bias column stride,
//       17 alpha (f32 bits), 18 beta (f32 bits), 19 bias batch stride
@group(0) @binding(0) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> params: array<u32>;
@group(0) @binding(5) var<storage, read> step: array<f32>;

fn activate(x: f32) -> f32 {
    switch ACT {
        case 1u: { return relu(x); }
        case 2u: { return stable_sigmoid(x); }
        case 3u: { return stable_tanh(x); }
        default: { return x; }
    }
}

// What the epilogue needs, read from params once per invocation: on CPU
// adapters a storage load costs as much as a data load, and the compiler may
// not move these past the stores to C (the bindings might alias).
struct Epilogue {
    c_base: u32,
    ldc: u32,
    alpha: f32,
    beta: f32,
    has_bias: bool,
    bias_base: u32,
    bias_rs: u32,
    bias_cs: u32,
    drop_key: u32,
    keep: f32,
    kept_scale: f32,
}

fn epilogue(batch: u32) -> Epilogue {
    var key = 0u;
    var keep = 1.0;
    var kept_scale = 1.0;
    if (DROPOUT) {
        key = dropout_key(params[20], params[21], u32(step[0]));
        keep = bitcast<f32>(params[22]);
        kept_scale = bitcast<f32>(params[23]);
    }
    return Epilogue(params[10] + batch * params[11], params[12], bitcast<f32>(params[17]),
                    bitcast<f32>(params[18]), params[14] != 0u, params[13] + batch * params[19],
                    params[15], params[16], key, keep, kept_scale);
}

fn store_at(e: Epilogue, m: u32, n: u32, product: f32) {
    var v = e.alpha * product;
    if (e.has_bias) {
        v += e.beta * bias[e.bias_base + m * e.bias_rs + n * e.bias_cs];
    }
    let at = e.c_base + m * e.ldc + n;
    var out = activate(v);
    if (DROPOUT) {
        let i = at - params[10];
        out = select(0.0, out * e.kept_scale, dropout_unit(i, e.drop_key) < e.keep);
    }
    c[at] = out;
}

// Stores row m of an 8-wide block (columns col0..col0+7, as two vec4s),
// skipping columns past N. Constant component indices keep the accumulators
// in registers, where a loop over them would index them dynamically.
fn store_row8(e: Epilogue, m: u32, col0: u32, n: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (col0 + 7u < n) {
        store_at(e, m, col0, lo.x);
        store_at(e, m, col0 + 1u, lo.y);
        store_at(e, m, col0 + 2u, lo.z);
        store_at(e, m, col0 + 3u, lo.w);
        store_at(e, m, col0 + 4u, hi.x);
        store_at(e, m, col0 + 5u, hi.y);
        store_at(e, m, col0 + 6u, hi.z);
        store_at(e, m, col0 + 7u, hi.w);
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (col0 + j < n) { store_at(e, m, col0 + j, lo[j]); }
        if (col0 + 4u + j < n) { store_at(e, m, col0 + 4u + j, hi[j]); }
    }
}
