// Numerically careful activations shared by the elementwise kernels and the
// matmul epilogue. This file is prepended to the modules that use them.

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
