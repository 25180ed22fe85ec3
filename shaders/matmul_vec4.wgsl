// Register-blocked matmul reading A and B as vec4: the fast path for
// non-transposed operands whose rows, offsets and batch strides are multiples
// of four elements (K and N multiples of 4). Each invocation owns an 8×8 block
// of C, walks K four at a time and loads one vec4 of A per row and two vec4s
// of B per k. (Prefixed by matmul_common.wgsl.)

@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let M = params[0];
    let N = params[1];
    let K = params[2];
    let batch = wid.z;
    let e = epilogue(batch);
    let row0 = (wid.y * 8u + lid.y) * 8u;
    let col0 = (wid.x * 8u + lid.x) * 8u;
    if (row0 >= M || col0 >= N) { return; }

    let a_base = (params[4] + batch * params[5]) / 4u;
    let lda = params[6] / 4u;
    let b_base = (params[7] + batch * params[8]) / 4u;
    let ldb = params[9] / 4u;
    let last_col4 = N / 4u - 1u;
    let col_lo = min(col0 / 4u, last_col4);
    let col_hi = min(col0 / 4u + 1u, last_col4);

    // Rows are unrolled by hand: private arrays indexed in loops are not
    // always promoted to registers by software drivers.
    let r0 = a_base + min(row0 + 0u, M - 1u) * lda;
    let r1 = a_base + min(row0 + 1u, M - 1u) * lda;
    let r2 = a_base + min(row0 + 2u, M - 1u) * lda;
    let r3 = a_base + min(row0 + 3u, M - 1u) * lda;
    let r4 = a_base + min(row0 + 4u, M - 1u) * lda;
    let r5 = a_base + min(row0 + 5u, M - 1u) * lda;
    let r6 = a_base + min(row0 + 6u, M - 1u) * lda;
    let r7 = a_base + min(row0 + 7u, M - 1u) * lda;
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

    for (var k4 = 0u; k4 < K / 4u; k4++) {
        let b_row = b_base + k4 * 4u * ldb;
        let bl0 = b4[b_row + col_lo];
        let bh0 = b4[b_row + col_hi];
        let bl1 = b4[b_row + ldb + col_lo];
        let bh1 = b4[b_row + ldb + col_hi];
        let bl2 = b4[b_row + 2u * ldb + col_lo];
        let bh2 = b4[b_row + 2u * ldb + col_hi];
        let bl3 = b4[b_row + 3u * ldb + col_lo];
        let bh3 = b4[b_row + 3u * ldb + col_hi];
        let av0 = a4[r0 + k4];
        lo0 += av0.x * bl0 + av0.y * bl1 + av0.z * bl2 + av0.w * bl3;
        hi0 += av0.x * bh0 + av0.y * bh1 + av0.z * bh2 + av0.w * bh3;
        let av1 = a4[r1 + k4];
        lo1 += av1.x * bl0 + av1.y * bl1 + av1.z * bl2 + av1.w * bl3;
        hi1 += av1.x * bh0 + av1.y * bh1 + av1.z * bh2 + av1.w * bh3;
        let av2 = a4[r2 + k4];
        lo2 += av2.x * bl0 + av2.y * bl1 + av2.z * bl2 + av2.w * bl3;
        hi2 += av2.x * bh0 + av2.y * bh1 + av2.z * bh2 + av2.w * bh3;
        let av3 = a4[r3 + k4];
        lo3 += av3.x * bl0 + av3.y * bl1 + av3.z * bl2 + av3.w * bl3;
        hi3 += av3.x * bh0 + av3.y * bh1 + av3.z * bh2 + av3.w * bh3;
        let av4 = a4[r4 + k4];
        lo4 += av4.x * bl0 + av4.y * bl1 + av4.z * bl2 + av4.w * bl3;
        hi4 += av4.x * bh0 + av4.y * bh1 + av4.z * bh2 + av4.w * bh3;
        let av5 = a4[r5 + k4];
        lo5 += av5.x * bl0 + av5.y * bl1 + av5.z * bl2 + av5.w * bl3;
        hi5 += av5.x * bh0 + av5.y * bh1 + av5.z * bh2 + av5.w * bh3;
        let av6 = a4[r6 + k4];
        lo6 += av6.x * bl0 + av6.y * bl1 + av6.z * bl2 + av6.w * bl3;
        hi6 += av6.x * bh0 + av6.y * bh1 + av6.z * bh2 + av6.w * bh3;
        let av7 = a4[r7 + k4];
        lo7 += av7.x * bl0 + av7.y * bl1 + av7.z * bl2 + av7.w * bl3;
        hi7 += av7.x * bh0 + av7.y * bh1 + av7.z * bh2 + av7.w * bh3;
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
