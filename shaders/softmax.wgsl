// Softmax and log-softmax along one axis of a contiguous tensor, one workgroup
// per row. The row maximum is subtracted before exponentiating, and sums are
// accumulated in f32 by a tree reduction in workgroup memory.

override WG: u32 = 64u;
override LOG: bool = false;

// params: 0 rows, 1 axis length, 2 inner size (stride of the axis),
//       3 input offset, 4 output offset
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> params: array<u32>;

var<workgroup> scratch: array<f32, WG>;

fn tree_max(lid: u32) -> f32 {
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) { scratch[lid] = max(scratch[lid], scratch[lid + s]); }
        workgroupBarrier();
    }
    let r = scratch[0];
    workgroupBarrier();
    return r;
}

fn tree_sum(lid: u32) -> f32 {
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) { scratch[lid] = scratch[lid] + scratch[lid + s]; }
        workgroupBarrier();
    }
    let r = scratch[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = wid.y * nwg.x + wid.x;
    // Uniform control flow: every invocation of the workgroup takes the same branch.
    if (row >= params[0]) { return; }
    let len = params[1];
    let inner = params[2];
    let base = (row / inner) * len * inner + row % inner;
    let xin = params[3] + base;
    let xout = params[4] + base;

    var m = bitcast<f32>(0xff800000u);
    for (var j = lid; j < len; j += WG) { m = max(m, x[xin + j * inner]); }
    scratch[lid] = m;
    let row_max = tree_max(lid);

    var s = 0.0;
    for (var j = lid; j < len; j += WG) { s += exp(x[xin + j * inner] - row_max); }
    scratch[lid] = s;
    let total = tree_sum(lid);

    if (LOG) {
        let log_total = log(total);
        for (var j = lid; j < len; j += WG) { out[xout + j * inner] = x[xin + j * inner] - row_max - log_total; }
    } else {
        let inv = 1.0 / total;
        for (var j = lid; j < len; j += WG) { out[xout + j * inner] = exp(x[xin + j * inner] - row_max) * inv; }
    }
}
