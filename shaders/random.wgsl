// Counter-based random numbers: element i of a draw is a pure function of
// (seed, i), so the same seed gives the same numbers on every adapter and in
// any dispatch order. (Prefixed by hash.wgsl.)

override WG: u32 = 64u;
override NORMAL: bool = false;

// params: 0 count, 1 seed low word, 2 seed high word, 3 output offset,
//       4 parameter p0 (f32 bits), 5 parameter p1 (f32 bits)
//   uniform: low p0, high p1;  normal: mean p0, std p1.
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> params: array<u32>;

fn draw(counter: u32) -> u32 {
    let key = pcg(params[1] ^ pcg(params[2]));
    return pcg(pcg(counter ^ key) + key);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * nwg.x + wid.x) * WG + lid;
    if (i >= params[0]) { return; }
    let p0 = bitcast<f32>(params[4]);
    let p1 = bitcast<f32>(params[5]);
    if (NORMAL) {
        // Box-Muller on counters 2i and 2i+1; 1 - u keeps the log argument in (0, 1].
        let u1 = 1.0 - unit(draw(2u * i));
        let u2 = unit(draw(2u * i + 1u));
        let z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
        out[params[3] + i] = p0 + p1 * z;
    } else {
        out[params[3] + i] = p0 + (p1 - p0) * unit(draw(i));
    }
}
