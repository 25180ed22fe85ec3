// Register-blocked Aᵀ · B with vec4 loads (the weight gradient of a linear
// layer, Xᵀ · dY): A is stored K×M and B K×N, so for each k one row of each
// gives two vec4s of A's column and two of B's row, and their outer product
// updates the invocation's 8×8 block of C. Needs M, N, the row strides,
// offsets and batch strides to be multiples of 4.
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
    let last_m4 = M / 4u - 1u;
    let last_n4 = N / 4u - 1u;
    let m_lo = min(row0 / 4u, last_m4);
    let m_hi = min(row0 / 4u + 1u, last_m4);
    let n_lo = min(col0 / 4u, last_n4);
    let n_hi = min(col0 / 4u + 1u, last_n4);

    var acc_lo: array<vec4<f32>, 8>;
    var acc_hi: array<vec4<f32>, 8>;
    for (var i = 0u; i < 8u; i++) {
        acc_lo[i] = vec4<f32>(0.0);
        acc_hi[i] = vec4<f32>(0.0);
    }

    for (var k = 0u; k < K; k++) {
        let a_row = a_base + k * lda;
        let b_row = b_base + k * ldb;
        let al = a4[a_row + m_lo];
        let ah = a4[a_row + m_hi];
        let bl = b4[b_row + n_lo];
        let bh = b4[b_row + n_hi];
        acc_lo[0] += al.x * bl; acc_hi[0] += al.x * bh;
        acc_lo[1] += al.y * bl; acc_hi[1] += al.y * bh;
        acc_lo[2] += al.z * bl; acc_hi[2] += al.z * bh;
        acc_lo[3] += al.w * bl; acc_hi[3] += al.w * bh;
        acc_lo[4] += ah.x * bl; acc_hi[4] += ah.x * bh;
        acc_lo[5] += ah.y * bl; acc_hi[5] += ah.y * bh;
        acc_lo[6] += ah.z * bl; acc_hi[6] += ah.z * bh;
        acc_lo[7] += ah.w * bl; acc_hi[7] += ah.w * bh;
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
