// Register-blocked matmul for software adapters and any GPU without a better
// variant: each invocation owns an 8×8 block of C held in registers, walks K
// with scalar loads through strides (any transpose, any alignment), and never
// touches workgroup memory. Out-of-range rows and columns are clamped on load
// (so loads never branch) and skipped on store. Rows are unrolled by hand:
// private arrays indexed in loops are not always promoted to registers by
// software drivers, and lavapipe measured 1.5–2× slower with them.
// (Prefixed by matmul_common.wgsl and matmul_scalar_loads.wgsl.)

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let M = params[0];
    let N = params[1];
    let K = params[2];
    let batch = wid.z;
    let e = epilogue(batch);
    let o = operands(batch);
    let row0 = (wid.y * 8u + lid.y) * 8u;
    let col0 = (wid.x * 8u + lid.x) * 8u;
    if (row0 >= M || col0 >= N) { return; }

    let m0 = row0;
    let m1 = min(row0 + 1u, M - 1u);
    let m2 = min(row0 + 2u, M - 1u);
    let m3 = min(row0 + 3u, M - 1u);
    let m4 = min(row0 + 4u, M - 1u);
    let m5 = min(row0 + 5u, M - 1u);
    let m6 = min(row0 + 6u, M - 1u);
    let m7 = min(row0 + 7u, M - 1u);
    let n0 = col0;
    let n1 = min(col0 + 1u, N - 1u);
    let n2 = min(col0 + 2u, N - 1u);
    let n3 = min(col0 + 3u, N - 1u);
    let n4 = min(col0 + 4u, N - 1u);
    let n5 = min(col0 + 5u, N - 1u);
    let n6 = min(col0 + 6u, N - 1u);
    let n7 = min(col0 + 7u, N - 1u);

    var lo0 = vec4<f32>(0.0);
    var hi0 = vec4<f32>(0.0);
    var lo1 = vec4<f32>(0.0);
    var hi1 = vec4<f32>(0.0);
    var lo2 = vec4<f32>(0.0);
    var hi2 = vec4<f32>(0.0);
    var lo3 = vec4<f32>(0.0);
    var hi3 = vec4<f32>(0.0);
    var lo4 = vec4<f32>(0.0);
    var hi4 = vec4<f32>(0.0);
    var lo5 = vec4<f32>(0.0);
    var hi5 = vec4<f32>(0.0);
    var lo6 = vec4<f32>(0.0);
    var hi6 = vec4<f32>(0.0);
    var lo7 = vec4<f32>(0.0);
    var hi7 = vec4<f32>(0.0);
    for (var k = 0u; k < K; k++) {
        let bl = vec4<f32>(load_b(o, k, n0), load_b(o, k, n1), load_b(o, k, n2), load_b(o, k, n3));
        let bh = vec4<f32>(load_b(o, k, n4), load_b(o, k, n5), load_b(o, k, n6), load_b(o, k, n7));
        let a0 = load_a(o, m0, k);
        lo0 += a0 * bl;
        hi0 += a0 * bh;
        let a1 = load_a(o, m1, k);
        lo1 += a1 * bl;
        hi1 += a1 * bh;
        let a2 = load_a(o, m2, k);
        lo2 += a2 * bl;
        hi2 += a2 * bh;
        let a3 = load_a(o, m3, k);
        lo3 += a3 * bl;
        hi3 += a3 * bh;
        let a4 = load_a(o, m4, k);
        lo4 += a4 * bl;
        hi4 += a4 * bh;
        let a5 = load_a(o, m5, k);
        lo5 += a5 * bl;
        hi5 += a5 * bh;
        let a6 = load_a(o, m6, k);
        lo6 += a6 * bl;
        hi6 += a6 * bh;
        let a7 = load_a(o, m7, k);
        lo7 += a7 * bl;
        hi7 += a7 * bh;
    }

    let rows_left = M - row0;
    store_row8(e, row0, col0, N, lo0, hi0);
    if (rows_left > 1u) { store_row8(e, row0 + 1u, col0, N, lo1, hi1); }
    if (rows_left > 2u) { store_row8(e, row0 + 2u, col0, N, lo2, hi2); }
    if (rows_left > 3u) { store_row8(e, row0 + 3u, col0, N, lo3, hi3); }
    if (rows_left > 4u) { store_row8(e, row0 + 4u, col0, N, lo4, hi4); }
    if (rows_left > 5u) { store_row8(e, row0 + 5u, col0, N, lo5, hi5); }
    if (rows_left > 6u) { store_row8(e, row0 + 6u, col0, N, lo6, hi6); }
    if (rows_left > 7u) { store_row8(e, row0 + 7u, col0, N, lo7, hi7); }
}
