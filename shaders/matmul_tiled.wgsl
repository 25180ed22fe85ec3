// Workgroup-memory tiled matmul for hardware GPUs: a 16×16 workgroup computes a
// 64×64 block of C, staging 64×16 slices of A and B in workgroup memory so each
// loaded element is reused 64 times; each invocation accumulates a 4×4 block.
// Loads outside the matrix read zero. (Prefixed by matmul_common.wgsl.)

const BM: u32 = 64u;
const BK: u32 = 16u;

var<workgroup> tile_a: array<array<f32, 64>, 16>;  // [k][m]
var<workgroup> tile_b: array<array<f32, 64>, 16>;  // [k][n]

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) flat: u32) {
    let M = params[0];
    let N = params[1];
    let K = params[2];
    let batch = wid.z;
    let e = epilogue(batch);
    let o = operands(batch);
    let block_m = wid.y * BM;
    let block_n = wid.x * BM;

    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) { acc[i] = vec4<f32>(0.0); }

    for (var k0 = 0u; k0 < K; k0 += BK) {
        // 256 invocations load 64×16 = 1024 elements of each operand, 4 each.
        for (var r = 0u; r < 4u; r++) {
            let e = flat + r * 256u;
            let kk = e / BM;
            let mm = e % BM;
            let gk = k0 + kk;
            var va = 0.0;
            if (gk < K && block_m + mm < M) { va = load_a(o, block_m + mm, gk); }
            tile_a[kk][mm] = va;
            var vb = 0.0;
            if (gk < K && block_n + mm < N) { vb = load_b(o, gk, block_n + mm); }
            tile_b[kk][mm] = vb;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let bv = vec4<f32>(tile_b[kk][lid.x * 4u], tile_b[kk][lid.x * 4u + 1u],
                               tile_b[kk][lid.x * 4u + 2u], tile_b[kk][lid.x * 4u + 3u]);
            for (var i = 0u; i < 4u; i++) {
                acc[i] += tile_a[kk][lid.y * 4u + i] * bv;
            }
        }
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i++) {
        let m = block_m + lid.y * 4u + i;
        for (var j = 0u; j < 4u; j++) {
            let n = block_n + lid.x * 4u + j;
            if (m < M && n < N) { store_at(e, m, n, acc[i][j]); }
        }
    }
}
