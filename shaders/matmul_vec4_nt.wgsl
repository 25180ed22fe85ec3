// Register-blocked A · Bᵀ with vec4 loads (the input gradient of a linear
// layer, dY · Wᵀ): B is stored N×K, so both operands are contiguous along K.
// Each invocation owns an 8×8 block of C and takes dot products of vec4s along
// K. Needs K, the row strides, offsets and batch strides to be multiples of 4.
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

    var a_rows: array<u32, 8>;
    var b_rows: array<u32, 8>;
    for (var i = 0u; i < 8u; i++) {
        a_rows[i] = a_base + min(row0 + i, M - 1u) * lda;
        b_rows[i] = b_base + min(col0 + i, N - 1u) * ldb;
    }
    var acc_lo: array<vec4<f32>, 8>;
    var acc_hi: array<vec4<f32>, 8>;
    for (var i = 0u; i < 8u; i++) {
        acc_lo[i] = vec4<f32>(0.0);
        acc_hi[i] = vec4<f32>(0.0);
    }

    for (var k4 = 0u; k4 < K / 4u; k4++) {
        let b0 = b4[b_rows[0] + k4];
        let b1 = b4[b_rows[1] + k4];
        let b2 = b4[b_rows[2] + k4];
        let b3 = b4[b_rows[3] + k4];
        let b4_ = b4[b_rows[4] + k4];
        let b5 = b4[b_rows[5] + k4];
        let b6 = b4[b_rows[6] + k4];
        let b7 = b4[b_rows[7] + k4];
        for (var i = 0u; i < 8u; i++) {
            let av = a4[a_rows[i] + k4];
            acc_lo[i] += vec4<f32>(dot(av, b0), dot(av, b1), dot(av, b2), dot(av, b3));
            acc_hi[i] += vec4<f32>(dot(av, b4_), dot(av, b5), dot(av, b6), dot(av, b7));
        }
    }

    let rows_left = M - row0;
    store_row8(e, row0, col0, N, acc_lo[0], acc_hi[0]);
    if (rows_left > 1u) { store_row8(e, row0 + 1u, col0, N, acc_lo[1], acc_hi[1]); }
    if (rows_left > 2u) { store_row8(e, row0 + 2u, col0, N, acc_lo[2], acc_hi[2]); }
    if (rows_left > 3u) { store_row8(e, row0 + 3u, col0, N, acc_lo[3], acc_hi[3]); }
    if (rows_left > 4u) { store_row8(e, row0 + 4u, col0, N, acc_lo[4], acc_hi[4]); }
    if (rows_left > 5u) { store_row8(e, row0 + 5u, col0, N, acc_lo[5], acc_hi[5]); }
    if (rows_left > 6u) { store_row8(e, row0 + 6u, col0, N, acc_lo[6], acc_hi[6]); }
    if (rows_left > 7u) { store_row8(e, row0 + 7u, col0, N, acc_lo[7], acc_hi[7]); }
}
