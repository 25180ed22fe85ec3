// Batch normalisation of [N, C] features with C a multiple of 4: each
// invocation handles four adjacent channels with vec4 accesses. The
// formulas are batchnorm.wgsl's; stats is [mean; var] as vec4s.

override WG: u32 = 64u;

// params: 0 rows (N), 1 channels / 4, 2 unused, 3 eps (f32 bits)
@group(0) @binding(0) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> stats: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> gamma: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> beta: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> params: array<u32>;
@group(0) @binding(6) var<storage, read> dy: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> dbeta: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> dgamma: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read_write> running: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read> step: array<f32>;
@group(0) @binding(11) var<storage, read_write> beta_out: array<vec4<f32>>;

fn c4() -> u32 { return params[1]; }
fn rows() -> u32 { return params[0]; }

fn inv_std(c: u32) -> vec4<f32> {
    return inverseSqrt(stats[c4() + c] + bitcast<f32>(params[3]));
}

fn column(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * WG + lid;
}

struct Moments4 {
    mean: vec4<f32>,
    variance: vec4<f32>,
}

fn channel_moments(c: u32) -> Moments4 {
    var s = vec4<f32>(0.0);
    for (var r = 0u; r < rows(); r++) { s += x[r * c4() + c]; }
    let mean = s / f32(rows());
    var q = vec4<f32>(0.0);
    for (var r = 0u; r < rows(); r++) {
        let d = x[r * c4() + c] - mean;
        q += d * d;
    }
    return Moments4(mean, q / f32(rows()));
}

@compute @workgroup_size(WG)
fn moments(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let c = column(wid, nwg, lid);
    if (c >= c4()) { return; }
    let mv = channel_moments(c);
    out[c] = mv.mean;
    out[c4() + c] = mv.variance;
}

// moments, and the running statistics moved toward them (params 4 keep,
// 5 variance factor).
@compute @workgroup_size(WG)
fn moments_update(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let c = column(wid, nwg, lid);
    if (c >= c4()) { return; }
    let mv = channel_moments(c);
    let v = c4() + c;
    out[c] = mv.mean;
    out[v] = mv.variance;
    let keep = bitcast<f32>(params[4]);
    running[c] = keep * running[c] + (1.0 - keep) * mv.mean;
    running[v] = keep * running[v] + (1.0 - keep) * bitcast<f32>(params[5]) * mv.variance;
}

// x over the channel groups, y over the rows (looping past the grid's limit).
@compute @workgroup_size(WG)
fn normalize(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let c = wid.x * WG + lid;
    if (c >= c4()) { return; }
    let scale = inv_std(c) * gamma[c];
    let shift = beta[c] - stats[c] * scale;
    for (var r = wid.y; r < rows(); r += nwg.y) {
        out[r * c4() + c] = x[r * c4() + c] * scale + shift;
    }
}

// normalize, then dropout (see batchnorm.wgsl): params 4, 5 seed words,
// 6 keep, 7 scale; element e of vec4 i is flat element 4i + e.
@compute @workgroup_size(WG)
fn normalize_dropout(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let c = wid.x * WG + lid;
    if (c >= c4()) { return; }
    let scale = inv_std(c) * gamma[c];
    let shift = beta[c] - stats[c] * scale;
    let key = dropout_key(params[4], params[5], u32(step[0]));
    let keep = bitcast<f32>(params[6]);
    let kept = bitcast<f32>(params[7]);
    for (var r = wid.y; r < rows(); r += nwg.y) {
        let i = r * c4() + c;
        let u = vec4<f32>(dropout_unit(4u * i, key), dropout_unit(4u * i + 1u, key),
                          dropout_unit(4u * i + 2u, key), dropout_unit(4u * i + 3u, key));
        out[i] = select(vec4<f32>(0.0), (x[i] * scale + shift) * kept, u < vec4<f32>(keep));
    }
}

@compute @workgroup_size(WG)
fn grad_gamma(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let c = column(wid, nwg, lid);
    if (c >= c4()) { return; }
    let mean = stats[c];
    var s = vec4<f32>(0.0);
    for (var r = 0u; r < rows(); r++) {
        let e = r * c4() + c;
        s += dy[e] * (x[e] - mean);
    }
    out[c] = s * inv_std(c);
}

// grad_gamma, and Σ dy (the gradient of beta) from the same loop.
@compute @workgroup_size(WG)
fn grad_gamma_beta(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let c = column(wid, nwg, lid);
    if (c >= c4()) { return; }
    let mean = stats[c];
    var s = vec4<f32>(0.0);
    var t = vec4<f32>(0.0);
    for (var r = 0u; r < rows(); r++) {
        let e = r * c4() + c;
        let d = dy[e];
        s += d * (x[e] - mean);
        t += d;
    }
    out[c] = s * inv_std(c);
    beta_out[c] = t;
}

// As batchnorm.wgsl: the _relu entries zero dx where x ≤ 0.
fn grad_input_batch_at(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, relu: bool) {
    let c = wid.x * WG + lid;
    if (c >= c4()) { return; }
    let s = inv_std(c);
    let m = f32(rows());
    let g = gamma[c] * s;
    let mean_dy = dbeta[c] / m;
    let mean_dyx = dgamma[c] / m;
    let mean = stats[c];
    for (var r = wid.y; r < rows(); r += nwg.y) {
        let i = r * c4() + c;
        let xi = x[i];
        let xhat = (xi - mean) * s;
        let v = g * (dy[i] - mean_dy - xhat * mean_dyx);
        out[i] = select(v, vec4<f32>(0.0), vec4<bool>(relu) & (xi <= vec4<f32>(0.0)));
    }
}

fn grad_input_fixed_at(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, relu: bool) {
    let c = wid.x * WG + lid;
    if (c >= c4()) { return; }
    let g = gamma[c] * inv_std(c);
    for (var r = wid.y; r < rows(); r += nwg.y) {
        let i = r * c4() + c;
        out[i] = select(g * dy[i], vec4<f32>(0.0), vec4<bool>(relu) & (x[i] <= vec4<f32>(0.0)));
    }
}

@compute @workgroup_size(WG)
fn grad_input_batch(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    grad_input_batch_at(wid, nwg, lid, false);
}

@compute @workgroup_size(WG)
fn grad_input_batch_relu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
    grad_input_batch_at(wid, nwg, lid, true);
}

@compute @workgroup_size(WG)
fn grad_input_fixed(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    grad_input_fixed_at(wid, nwg, lid, false);
}

@compute @workgroup_size(WG)
fn grad_input_fixed_relu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
    grad_input_fixed_at(wid, nwg, lid, true);
}
