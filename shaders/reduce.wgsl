// Argmax over any set of axes: the first index of the maximum over the
// reduced elements, row-major over the reduced axes. The input is seen as kept
// axes × reduced axes, each addressed through strides. One workgroup computes
// one output element: a strided loop, then a tree reduction in workgroup
// memory. (Sums, means and extrema are generated kernels: codegen/reduction.rs.)

override WG: u32 = 64u;

const MAX_RANK: u32 = 8u;
// params: 0 output count, 1 kept rank, 2 reduced rank, 3 reduced count,
//       4 input offset, 5 output offset,
//       6..14 kept shape, 14..22 kept strides, 22..30 reduced shape, 30..38 reduced strides
const KEPT_SHAPE: u32 = 6u;
const KEPT_STRIDES: u32 = 14u;
const RED_SHAPE: u32 = 22u;
const RED_STRIDES: u32 = 30u;

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> params: array<u32>;
@group(0) @binding(3) var<storage, read_write> out_index: array<i32>;

var<workgroup> scratch: array<f32, WG>;
var<workgroup> scratch_index: array<u32, WG>;

fn strided_offset(i: u32, rank: u32, shape_at: u32, strides_at: u32) -> u32 {
    // One axis needs no division (slow and scalar on CPU adapters).
    if (rank == 1u) { return i * params[strides_at]; }
    var rest = i;
    var off = 0u;
    for (var d = 0u; d < rank; d++) {
        let axis = rank - 1u - d;
        let size = params[shape_at + axis];
        off += (rest % size) * params[strides_at + axis];
        rest = rest / size;
    }
    return off;
}

@compute @workgroup_size(WG)
fn argmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let o = wid.y * nwg.x + wid.x;
    if (o >= params[0]) { return; }
    let count = params[3];
    let base = params[4] + strided_offset(o, params[1], KEPT_SHAPE, KEPT_STRIDES);
    var best = bitcast<f32>(0xff800000u);
    var best_j = 0xffffffffu;
    for (var j = lid; j < count; j += WG) {
        let v = x[base + strided_offset(j, params[2], RED_SHAPE, RED_STRIDES)];
        // j grows, so a strict comparison keeps the first maximum of this invocation.
        if (v > best || best_j == 0xffffffffu) { best = v; best_j = j; }
    }
    scratch[lid] = best;
    scratch_index[lid] = best_j;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            let v = scratch[lid + s];
            let j = scratch_index[lid + s];
            let take = j != 0xffffffffu && (scratch_index[lid] == 0xffffffffu || v > scratch[lid]
                || (v == scratch[lid] && j < scratch_index[lid]));
            if (take) { scratch[lid] = v; scratch_index[lid] = j; }
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        out_index[params[5] + o] = i32(scratch_index[0]);
    }
}
