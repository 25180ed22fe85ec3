// In-place optimizer steps on one parameter. One invocation per element;
// every buffer is the parameter's size.
// The step's hyperparameters come from a small buffer the host rewrites before
// each run, so a learning-rate schedule needs no recompilation.
// (Prefixed by adam_rule.wgsl.)

override WG: u32 = 64u;

// params: 0 count
@group(0) @binding(0) var<storage, read_write> w: array<f32>;
@group(0) @binding(1) var<storage, read_write> s1: array<f32>;
@group(0) @binding(2) var<storage, read_write> s2: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read> hyper: array<f32>;
@group(0) @binding(5) var<storage, read> params: array<u32>;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * WG + lid;
}

// Adam (adam_rule.wgsl has the rule and the hyper words).
@compute @workgroup_size(WG)
fn adam(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i >= params[0]) { return; }
    let r = adam_rule(w[i], grad[i], s1[i], s2[i]);
    w[i] = r.x;
    s1[i] = r.y;
    s2[i] = r.z;
}

// hyper: 0 lr, 1 momentum, 2 weight decay (L2, added to the gradient), 3 nesterov (0 or 1)
// PyTorch's rule: b = μ·b + g; step along g + μ·b (Nesterov) or b.
@compute @workgroup_size(WG)
fn sgd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i >= params[0]) { return; }
    let mu = hyper[1];
    let p = w[i];
    let g = grad[i] + hyper[2] * p;
    let b = mu * s1[i] + g;
    s1[i] = b;
    w[i] = p - hyper[0] * select(b, g + mu * b, hyper[3] != 0.0);
}
