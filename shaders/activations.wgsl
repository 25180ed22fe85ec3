// Numerically careful activations shared by the elementwise kernels and the
// matmul epilogue. This file is prepended to the modules that use them.

// NaN by its bits: shader compilers may assume float compares never see NaN
// (lavapipe folds `x != x` away), integer tests they cannot.
fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

// relu that keeps NaN, as PyTorch and Keras do: max(NaN, 0) is 0 on many
// adapters, which would hide a diverged model.
fn relu(x: f32) -> f32 {
    if (is_nan(x)) { return x; }
    return max(x, 0.0);
}

fn stable_sigmoid(x: f32) -> f32 {
    if (x >= 0.0) {
        return 1.0 / (1.0 + exp(-x));
    }
    let e = exp(x);
    return e / (1.0 + e);
}

fn stable_tanh(x: f32) -> f32 {
    // Small |x|: an odd polynomial (Cephes tanhf), since (1 - t) / (1 + t)
    // cancels catastrophically there.
    if (abs(x) < 0.625) {
        let z = x * x;
        return ((((-5.70498872745e-3 * z + 2.06390887954e-2) * z - 5.37397155531e-2) * z
            + 1.33314422036e-1) * z - 3.33332819422e-1) * z * x + x;
    }
    let t = exp(-2.0 * abs(x));
    return sign(x) * (1.0 - t) / (1.0 + t);
}
