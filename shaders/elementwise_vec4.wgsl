// Row-major elementwise maps and column sums four elements at a time, for
// operands that are contiguous, with counts and offsets that are multiples of
// 4. CPU adapters pay for every storage access of every invocation, so one
// vec4 access in place of four scalar ones is most of the gain.
// (Prefixed by activations.wgsl and elementwise_ops.wgsl.)

override WG: u32 = 64u;

// params: 0 vec4 count (outputs), 1 rows (column_sum), 2 scalar parameter (f32 bits), 3 unused,
//         4 a offset, 5 b offset, 6 output offset (all in vec4s)
@group(0) @binding(0) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> params: array<u32>;
fn param_word(i: u32) -> u32 { return params[i]; }

fn index4(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn unary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = index4(wid, nwg, lid);
    if (i >= params[0]) { return; }
    let v = a[params[4] + i];
    out[params[6] + i] = vec4<f32>(apply_unary(v.x), apply_unary(v.y), apply_unary(v.z), apply_unary(v.w));
}

@compute @workgroup_size(WG)
fn binary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = index4(wid, nwg, lid);
    if (i >= params[0]) { return; }
    let u = a[params[4] + i];
    let v = b[params[5] + i];
    out[params[6] + i] = vec4<f32>(apply_binary(u.x, v.x), apply_binary(u.y, v.y),
                                   apply_binary(u.z, v.z), apply_binary(u.w, v.w)) * param();
}

// out[c] = Σ_r a[r, c] (OP 1: the mean) for a row-major [rows, 4·count] matrix:
// one invocation per four columns, a loop down the rows.
@compute @workgroup_size(WG)
fn column_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let c = index4(wid, nwg, lid);
    let cols = params[0];
    if (c >= cols) { return; }
    let rows = params[1];
    var s = vec4<f32>(0.0);
    for (var r = 0u; r < rows; r++) {
        s += a[params[4] + r * cols + c];
    }
    if (OP == 1u) { s = s / f32(rows); }
    out[params[6] + c] = s;
}
