// Adam on four elements per invocation, for parameters whose size is a
// multiple of 4 (see optim.wgsl for the rule and the hyperparameter words).

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
    let b1 = hyper[2];
    let b2 = hyper[3];
    let p = w[i];
    let g = grad[i] + hyper[5] * p;
    let m = b1 * s1[i] + (1.0 - b1) * g;
    let v = b2 * s2[i] + (1.0 - b2) * g * g;
    s1[i] = m;
    s2[i] = v;
    w[i] = p - hyper[4] * p - hyper[0] * m / (sqrt(v) + hyper[1]);
}
