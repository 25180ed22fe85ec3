// optim_multi.wgsl four elements at a time, for parameters whose sizes are
// all multiples of 4: invocation i updates vec4 i of the concatenation.

override WG: u32 = 64u;

// params: 0..4 vec4 count of each slot (0 for an unused slot)
@group(0) @binding(0) var<storage, read_write> w0: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> m0: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> v0: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> g0: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> w1: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> m1: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> v1: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> g1: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> w2: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read_write> m2: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read_write> v2: array<vec4<f32>>;
@group(0) @binding(11) var<storage, read> g2: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read_write> w3: array<vec4<f32>>;
@group(0) @binding(13) var<storage, read_write> m3: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read_write> v3: array<vec4<f32>>;
@group(0) @binding(15) var<storage, read> g3: array<vec4<f32>>;
@group(0) @binding(16) var<storage, read> hyper: array<f32>;
@group(0) @binding(17) var<storage, read> params: array<u32>;

@compute @workgroup_size(WG)
fn adam(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    var i = (wid.y * nwg.x + wid.x) * WG + lid;
    if (i < params[0]) {
        let r = adam_rule4(w0[i], g0[i], m0[i], v0[i]);
        w0[i] = r[0];
        m0[i] = r[1];
        v0[i] = r[2];
        return;
    }
    i -= params[0];
    if (i < params[1]) {
        let r = adam_rule4(w1[i], g1[i], m1[i], v1[i]);
        w1[i] = r[0];
        m1[i] = r[1];
        v1[i] = r[2];
        return;
    }
    i -= params[1];
    if (i < params[2]) {
        let r = adam_rule4(w2[i], g2[i], m2[i], v2[i]);
        w2[i] = r[0];
        m2[i] = r[1];
        v2[i] = r[2];
        return;
    }
    i -= params[2];
    if (i < params[3]) {
        let r = adam_rule4(w3[i], g3[i], m3[i], v3[i]);
        w3[i] = r[0];
        m3[i] = r[1];
        v3[i] = r[2];
        return;
    }
    i -= params[3];
}
