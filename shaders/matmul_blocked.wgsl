// Register-blocked matmul for software adapters and any GPU without a better
// variant: each invocation owns an 8×8 block of C held in registers, walks K
// unrolled by 4, and never touches workgroup memory. Out-of-range rows and
// columns are clamped on load (so loads never branch) and skipped on store.
// (Prefixed by matmul_common.wgsl.)

const TILE: u32 = 8u;

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let M = params[0];
    let N = params[1];
    let K = params[2];
    let batch = wid.z;
    let e = epilogue(batch);
    let o = operands(batch);
    let row0 = (wid.y * 8u + lid.y) * TILE;
    let col0 = (wid.x * 8u + lid.x) * TILE;
    if (row0 >= M || col0 >= N) { return; }

    var rows: array<u32, 8>;
    var cols: array<u32, 8>;
    for (var i = 0u; i < TILE; i++) {
        rows[i] = min(row0 + i, M - 1u);
        cols[i] = min(col0 + i, N - 1u);
    }

    var acc_lo: array<vec4<f32>, 8>;
    var acc_hi: array<vec4<f32>, 8>;
    for (var i = 0u; i < TILE; i++) {
        acc_lo[i] = vec4<f32>(0.0);
        acc_hi[i] = vec4<f32>(0.0);
    }

    let k4 = K & ~3u;
    var k = 0u;
    for (; k < k4; k += 4u) {
        var bl: array<vec4<f32>, 4>;
        var bh: array<vec4<f32>, 4>;
        for (var u = 0u; u < 4u; u++) {
            bl[u] = vec4<f32>(load_b(o, k + u, cols[0]), load_b(o, k + u, cols[1]),
                              load_b(o, k + u, cols[2]), load_b(o, k + u, cols[3]));
            bh[u] = vec4<f32>(load_b(o, k + u, cols[4]), load_b(o, k + u, cols[5]),
                              load_b(o, k + u, cols[6]), load_b(o, k + u, cols[7]));
        }
        for (var i = 0u; i < TILE; i++) {
            let av = vec4<f32>(load_a(o, rows[i], k), load_a(o, rows[i], k + 1u),
                               load_a(o, rows[i], k + 2u), load_a(o, rows[i], k + 3u));
            acc_lo[i] += av.x * bl[0] + av.y * bl[1] + av.z * bl[2] + av.w * bl[3];
            acc_hi[i] += av.x * bh[0] + av.y * bh[1] + av.z * bh[2] + av.w * bh[3];
        }
    }
    for (; k < K; k++) {
        let bl = vec4<f32>(load_b(o, k, cols[0]), load_b(o, k, cols[1]),
                           load_b(o, k, cols[2]), load_b(o, k, cols[3]));
        let bh = vec4<f32>(load_b(o, k, cols[4]), load_b(o, k, cols[5]),
                           load_b(o, k, cols[6]), load_b(o, k, cols[7]));
        for (var i = 0u; i < TILE; i++) {
            let av = load_a(o, rows[i], k);
            acc_lo[i] += av * bl;
            acc_hi[i] += av * bh;
        }
    }

    for (var i = 0u; i < TILE; i++) {
        let m = row0 + i;
        if (m >= M) { break; }
        for (var j = 0u; j < 4u; j++) {
            if (col0 + j < N) { store_at(e, m, col0 + j, acc_lo[i][j]); }
            if (col0 + 4u + j < N) { store_at(e, m, col0 + 4u + j, acc_hi[i][j]); }
        }
    }
}
