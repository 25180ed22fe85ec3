// Small products (a dense layer at a small batch): one invocation per 1×4
// strip of C, so a 64×128 output spreads over 2048 invocations rather than the
// 128 of the 8×8-blocked kernel. CPU adapters run few large invocations
// poorly at these sizes (their per-invocation register blocks spill), and a
// GPU has more lanes than the blocked kernel would fill.
// (Prefixed by matmul_common.wgsl and matmul_scalar_loads.wgsl.)

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let M = params[0];
    let N = params[1];
    let K = params[2];
    let batch = wid.z;
    let e = epilogue(batch);
    let o = operands(batch);
    let strips = (N + 3u) / 4u;
    let t = wid.x * 64u + lid;
    if (t >= M * strips) { return; }
    let m = t / strips;
    let n0 = (t % strips) * 4u;
    // Columns past N are clamped on load and skipped on store.
    let n1 = min(n0 + 1u, N - 1u);
    let n2 = min(n0 + 2u, N - 1u);
    let n3 = min(n0 + 3u, N - 1u);
    var acc = vec4<f32>(0.0);
    for (var k = 0u; k < K; k++) {
        let av = load_a(o, m, k);
        acc += av * vec4<f32>(load_b(o, k, n0), load_b(o, k, n1),
                              load_b(o, k, n2), load_b(o, k, n3));
    }
    for (var j = 0u; j < 4u; j++) {
        if (n0 + j < N) { store_at(e, m, n0 + j, acc[j]); }
    }
}
