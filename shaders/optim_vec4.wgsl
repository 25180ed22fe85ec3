// Adam on four elements per invocation, for parameters whose size is a
// multiple of 4. (Prefixed by adam_rule.wgsl, which has the rule.)

override WG: u32 = 64u;

// params: 0 vec4 count
@group(0) @binding(0) var<storage, read_write> w: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> s1: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> s2: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> grad: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> hyper: array<f32>;
@group(0) @binding(5) var<storage, read> params: array<u32>;

@compute @workgroup_size(WG)
fn adam(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * nwg.x + wid.x) * WG + lid;
    if (i >= params[0]) { return; }
    let r = adam_rule4(w[i], grad[i], s1[i], s2[i]);
    w[i] = r[0];
    s1[i] = r[1];
    s2[i] = r[2];
}
