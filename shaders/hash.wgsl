// Counter-based hashing shared by the random kernels (random.wgsl) and the
// dropout fused into batch norm (batchnorm*.wgsl): PCG's output permutation
// applied in rounds, so a draw is a pure function of (seed, counter).

fn pcg(x: u32) -> u32 {
    let state = x * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// uniform in [0, 1) with 24 bits, exactly representable in f32
fn unit(bits: u32) -> f32 {
    return f32(bits >> 8u) * (1.0 / 16777216.0);
}

// The key of a dropout mask for seed (lo, hi) at a step number.
fn dropout_key(seed_lo: u32, seed_hi: u32, step: u32) -> u32 {
    return pcg(seed_lo ^ pcg(seed_hi ^ pcg(step + 0x9e3779b9u)));
}

// The uniform draw deciding element i of a dropout mask.
fn dropout_unit(i: u32, key: u32) -> f32 {
    return unit(pcg(pcg(i ^ key) + key));
}
