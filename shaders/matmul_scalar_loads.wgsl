// Scalar loads of A and B through strides, for operands of any alignment.
// (Prefixed by matmul_common.wgsl; used by the blocked and tiled kernels.)

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;

// Where A and B of one batch start and their row strides, read once per
// invocation rather than at every load.
struct Operands {
    a_base: u32,
    lda: u32,
    b_base: u32,
    ldb: u32,
}

fn operands(batch: u32) -> Operands {
    return Operands(params[4] + batch * params[5], params[6], params[7] + batch * params[8], params[9]);
}

// Element (m, k) of op(A).
fn load_a(o: Operands, m: u32, k: u32) -> f32 {
    if (TRANS_A) { return a[o.a_base + k * o.lda + m]; }
    return a[o.a_base + m * o.lda + k];
}

// Element (k, n) of op(B).
fn load_b(o: Operands, k: u32, n: u32) -> f32 {
    if (TRANS_B) { return b[o.b_base + n * o.ldb + k]; }
    return b[o.b_base + k * o.ldb + n];
}
