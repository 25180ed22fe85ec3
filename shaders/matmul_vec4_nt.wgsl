// Register-blocked A · Bᵀ with vec4 loads (the input gradient of a linear
// layer, dY · Wᵀ): B is stored N×K, so both operands are contiguous along K.
// Each invocation owns an 8×8 block of C and takes dot products of vec4s along
// K, rows unrolled by hand (see matmul_blocked.wgsl). Needs K, the row strides, offsets and batch strides to be multiples of 4.
// (Prefixed by activations.wgsl and matmul_common.wgsl.)

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

    let ar0 = a_base + min(row0 + 0u, M - 1u) * lda;
    let ar1 = a_base + min(row0 + 1u, M - 1u) * lda;
    let ar2 = a_base + min(row0 + 2u, M - 1u) * lda;
    let ar3 = a_base + min(row0 + 3u, M - 1u) * lda;
    let ar4 = a_base + min(row0 + 4u, M - 1u) * lda;
    let ar5 = a_base + min(row0 + 5u, M - 1u) * lda;
    let ar6 = a_base + min(row0 + 6u, M - 1u) * lda;
    let ar7 = a_base + min(row0 + 7u, M - 1u) * lda;
    let br0 = b_base + min(col0 + 0u, N - 1u) * ldb;
    let br1 = b_base + min(col0 + 1u, N - 1u) * ldb;
    let br2 = b_base + min(col0 + 2u, N - 1u) * ldb;
    let br3 = b_base + min(col0 + 3u, N - 1u) * ldb;
    let br4 = b_base + min(col0 + 4u, N - 1u) * ldb;
    let br5 = b_base + min(col0 + 5u, N - 1u) * ldb;
    let br6 = b_base + min(col0 + 6u, N - 1u) * ldb;
    let br7 = b_base + min(col0 + 7u, N - 1u) * ldb;
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
        let bv0 = b4[br0 + k4];
        let bv1 = b4[br1 + k4];
        let bv2 = b4[br2 + k4];
        let bv3 = b4[br3 + k4];
        let bv4 = b4[br4 + k4];
        let bv5 = b4[br5 + k4];
        let bv6 = b4[br6 + k4];
        let bv7 = b4[br7 + k4];
        let av0 = a4[ar0 + k4];
        lo0 += vec4<f32>(dot(av0, bv0), dot(av0, bv1), dot(av0, bv2), dot(av0, bv3));
        hi0 += vec4<f32>(dot(av0, bv4), dot(av0, bv5), dot(av0, bv6), dot(av0, bv7));
        let av1 = a4[ar1 + k4];
        lo1 += vec4<f32>(dot(av1, bv0), dot(av1, bv1), dot(av1, bv2), dot(av1, bv3));
        hi1 += vec4<f32>(dot(av1, bv4), dot(av1, bv5), dot(av1, bv6), dot(av1, bv7));
        let av2 = a4[ar2 + k4];
        lo2 += vec4<f32>(dot(av2, bv0), dot(av2, bv1), dot(av2, bv2), dot(av2, bv3));
        hi2 += vec4<f32>(dot(av2, bv4), dot(av2, bv5), dot(av2, bv6), dot(av2, bv7));
        let av3 = a4[ar3 + k4];
        lo3 += vec4<f32>(dot(av3, bv0), dot(av3, bv1), dot(av3, bv2), dot(av3, bv3));
        hi3 += vec4<f32>(dot(av3, bv4), dot(av3, bv5), dot(av3, bv6), dot(av3, bv7));
        let av4 = a4[ar4 + k4];
        lo4 += vec4<f32>(dot(av4, bv0), dot(av4, bv1), dot(av4, bv2), dot(av4, bv3));
        hi4 += vec4<f32>(dot(av4, bv4), dot(av4, bv5), dot(av4, bv6), dot(av4, bv7));
        let av5 = a4[ar5 + k4];
        lo5 += vec4<f32>(dot(av5, bv0), dot(av5, bv1), dot(av5, bv2), dot(av5, bv3));
        hi5 += vec4<f32>(dot(av5, bv4), dot(av5, bv5), dot(av5, bv6), dot(av5, bv7));
        let av6 = a4[ar6 + k4];
        lo6 += vec4<f32>(dot(av6, bv0), dot(av6, bv1), dot(av6, bv2), dot(av6, bv3));
        hi6 += vec4<f32>(dot(av6, bv4), dot(av6, bv5), dot(av6, bv6), dot(av6, bv7));
        let av7 = a4[ar7 + k4];
        lo7 += vec4<f32>(dot(av7, bv0), dot(av7, bv1), dot(av7, bv2), dot(av7, bv3));
        hi7 += vec4<f32>(dot(av7, bv4), dot(av7, bv5), dot(av7, bv6), dot(av7, bv7));
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
