// Scalar loads of A and B through strides, for operands of any alignment.
// (Prefixed by matmul_common.wgsl; used by the blocked and tiled kernels.)

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;

// Element (m, k) of op(A) in batch `batch`.
fn load_a(batch: u32, m: u32, k: u32) -> f32 {
    let base = params[4] + batch * params[5];
    if (TRANS_A) { return a[base + k * params[6] + m]; }
    return a[base + m * params[6] + k];
}

// Element (k, n) of op(B) in batch `batch`.
fn load_b(batch: u32, k: u32, n: u32) -> f32 {
    let base = params[7] + batch * params[8];
    if (TRANS_B) { return b[base + n * params[9] + k]; }
    return b[base + k * params[9] + n];
}
