// Batch normalisation over a channel axis. The input is seen as
// [outer, channels, inner] in row-major order: [N, F] features are
// (N, F, 1), NCHW images are (N, C, H·W). Statistics are per channel over the
// M = outer·inner elements of that channel.
//   moments:          out = [mean; biased variance], shape [2, C]  (one invocation per channel)
//   normalize:        out = (x − mean)·rsqrt(var + eps)·gamma + beta
//   grad_gamma:       out[c] = Σ dy · x̂                           (one invocation per channel)
//   grad_input_batch: dx when mean and var are this batch's own statistics
//   grad_input_fixed: dx when they are constants (running statistics)

override WG: u32 = 64u;

// params: 0 outer, 1 channels, 2 inner, 3 eps (f32 bits)
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> stats: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> beta: array<f32>;
@group(0) @binding(5) var<storage, read> params: array<u32>;
@group(0) @binding(6) var<storage, read> dy: array<f32>;
@group(0) @binding(7) var<storage, read> dbeta: array<f32>;
@group(0) @binding(8) var<storage, read> dgamma: array<f32>;
@group(0) @binding(9) var<storage, read_write> running: array<f32>;
@group(0) @binding(10) var<storage, read> step: array<f32>;
@group(0) @binding(11) var<storage, read_write> beta_out: array<f32>;


fn channels() -> u32 { return params[1]; }
fn per_channel() -> u32 { return params[0] * params[2]; }
fn eps() -> f32 { return bitcast<f32>(params[3]); }

fn linear_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * WG + lid;
}

fn inv_std(c: u32) -> f32 {
    return inverseSqrt(stats[channels() + c] + eps());
}

// Sum over channel c of f(element index), by nested loops (no division).
// One invocation per channel: CPU adapters run a workgroup's invocations in
// turn, so barriers for a tree reduction cost more than these loops.
fn channel_index(c: u32, o: u32, i: u32) -> u32 {
    return (o * channels() + c) * params[2] + i;
}

// Per-channel mean and biased variance (as x and y).
fn channel_moments(c: u32) -> vec2<f32> {
    let m = per_channel();
    var s = 0.0;
    for (var o = 0u; o < params[0]; o++) {
        for (var i = 0u; i < params[2]; i++) { s += x[channel_index(c, o, i)]; }
    }
    let mean = s / f32(m);
    // Two passes: the centred sum of squares does not cancel catastrophically.
    var q = 0.0;
    for (var o = 0u; o < params[0]; o++) {
        for (var i = 0u; i < params[2]; i++) {
            let d = x[channel_index(c, o, i)] - mean;
            q += d * d;
        }
    }
    return vec2<f32>(mean, q / f32(m));
}

@compute @workgroup_size(WG)
fn moments(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let c = linear_index(wid, nwg, lid);
    if (c >= channels()) { return; }
    let mv = channel_moments(c);
    out[c] = mv.x;
    out[channels() + c] = mv.y;
}

// moments, and the running statistics moved toward them (params 4 keep,
// 5 variance factor).
@compute @workgroup_size(WG)
fn moments_update(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let c = linear_index(wid, nwg, lid);
    if (c >= channels()) { return; }
    let mv = channel_moments(c);
    let v = channels() + c;
    out[c] = mv.x;
    out[v] = mv.y;
    let keep = bitcast<f32>(params[4]);
    running[c] = keep * running[c] + (1.0 - keep) * mv.x;
    running[v] = keep * running[v] + (1.0 - keep) * bitcast<f32>(params[5]) * mv.y;
}

fn channel_in_row(k: u32) -> u32 {
    if (params[2] == 1u) { return k; }
    return k / params[2];
}

@compute @workgroup_size(WG)
fn normalize(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let k = wid.x * WG + lid;
    let row = channels() * params[2];
    if (k >= row) { return; }
    let c = channel_in_row(k);
    let scale = inv_std(c) * gamma[c];
    let shift = beta[c] - stats[c] * scale;
    for (var o = wid.y; o < params[0]; o += nwg.y) {
        let i = o * row + k;
        out[i] = x[i] * scale + shift;
    }
}

// normalize, then dropout of the result (the mask of random.wgsl's dropout
// for the same seed and step): params 4, 5 seed words, 6 keep, 7 scale.
@compute @workgroup_size(WG)
fn normalize_dropout(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let k = wid.x * WG + lid;
    let row = channels() * params[2];
    if (k >= row) { return; }
    let c = channel_in_row(k);
    let scale = inv_std(c) * gamma[c];
    let shift = beta[c] - stats[c] * scale;
    let key = dropout_key(params[4], params[5], u32(step[0]));
    let keep = bitcast<f32>(params[6]);
    let kept = bitcast<f32>(params[7]);
    for (var o = wid.y; o < params[0]; o += nwg.y) {
        let i = o * row + k;
        out[i] = select(0.0, (x[i] * scale + shift) * kept, dropout_unit(i, key) < keep);
    }
}

@compute @workgroup_size(WG)
fn grad_gamma(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let c = linear_index(wid, nwg, lid);
    if (c >= channels()) { return; }
    let mean = stats[c];
    var s = 0.0;
    for (var o = 0u; o < params[0]; o++) {
        for (var i = 0u; i < params[2]; i++) {
            let e = channel_index(c, o, i);
            s += dy[e] * (x[e] - mean);
        }
    }
    out[c] = s * inv_std(c);
}

// grad_gamma, and Σ dy (the gradient of beta) from the same loop.
@compute @workgroup_size(WG)
fn grad_gamma_beta(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let c = linear_index(wid, nwg, lid);
    if (c >= channels()) { return; }
    let mean = stats[c];
    var s = 0.0;
    var t = 0.0;
    for (var o = 0u; o < params[0]; o++) {
        for (var i = 0u; i < params[2]; i++) {
            let e = channel_index(c, o, i);
            let d = dy[e];
            s += d * (x[e] - mean);
            t += d;
        }
    }
    out[c] = s * inv_std(c);
    beta_out[c] = t;
}

// dx = γ·σ⁻¹·(dy − Σdy/M − x̂·Σ(dy·x̂)/M): the batch statistics depend on x too.
// The _relu entries zero dx where x ≤ 0: x is a relu's output, and the
// gradient goes on through that relu in the same pass.
fn grad_input_batch_at(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, relu: bool) {
    let k = wid.x * WG + lid;
    let row = channels() * params[2];
    if (k >= row) { return; }
    let c = channel_in_row(k);
    let s = inv_std(c);
    let m = f32(per_channel());
    let g = gamma[c] * s;
    let mean_dy = dbeta[c] / m;
    let mean_dyx = dgamma[c] / m;
    for (var o = wid.y; o < params[0]; o += nwg.y) {
        let i = o * row + k;
        let xi = x[i];
        let xhat = (xi - stats[c]) * s;
        let v = g * (dy[i] - mean_dy - xhat * mean_dyx);
        out[i] = select(v, 0.0, relu && xi <= 0.0);
    }
}

fn grad_input_fixed_at(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, relu: bool) {
    let k = wid.x * WG + lid;
    let row = channels() * params[2];
    if (k >= row) { return; }
    let c = channel_in_row(k);
    let g = gamma[c] * inv_std(c);
    for (var o = wid.y; o < params[0]; o += nwg.y) {
        let i = o * row + k;
        out[i] = select(g * dy[i], 0.0, relu && x[i] <= 0.0);
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
