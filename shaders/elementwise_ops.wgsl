// Helpers of the elementwise operations whose formulas need more than one
// expression. Generated kernels call them by name: the expression of each
// operation is written beside its f64 reference in `ops/elementwise.rs`.
// (Prefixed by activations.wgsl.)

// pow with the real-valued cases WGSL leaves undefined: negative bases with
// integral exponents, and zero bases.
fn real_pow(x: f32, y: f32) -> f32 {
    if (x == 0.0) {
        if (y == 0.0) { return 1.0; }
        if (y > 0.0) { return 0.0; }
        return bitcast<f32>(0x7f800000u);
    }
    if (x < 0.0) {
        if (y != floor(y)) { return bitcast<f32>(0x7fc00000u); }
        let r = pow(-x, y);
        if (abs(y % 2.0) == 1.0) { return -r; }
        return r;
    }
    return pow(x, y);
}

const BCE_EPSILON: f32 = 1e-7;

// log(1 + t) for t in [0, 1], accurate also where 1 + t rounds to 1.
fn log1p_small(t: f32) -> f32 {
    if (t < 1e-4) { return t - 0.5 * t * t; }
    return log(1.0 + t);
}

// Binary cross-entropy of probability x against target y, x clipped to
// [ε, 1 − ε] as Keras does. A NaN probability stays NaN (clamp would hide it).
fn bce_term(x: f32, y: f32) -> f32 {
    if (is_nan(x)) { return x; }
    let p = clamp(x, BCE_EPSILON, 1.0 - BCE_EPSILON);
    return -(y * log(p) + (1.0 - y) * log(1.0 - p));
}

// d bce_term / dx: zero where the clip is active.
fn bce_grad(x: f32, y: f32) -> f32 {
    if (x < BCE_EPSILON || x > 1.0 - BCE_EPSILON) { return 0.0; }
    return -y / x + (1.0 - y) / (1.0 - x);
}

// Binary cross-entropy of logit x against target y: log(1 + e^-|x|) through
// log1p's series where e^-|x| is tiny.
fn bce_logits_term(x: f32, y: f32) -> f32 {
    return max(x, 0.0) - x * y + log1p_small(exp(-abs(x)));
}

// Keras' hard sigmoid: relu6(x + 3) / 6.
fn hard_sigmoid(x: f32) -> f32 {
    return clamp(x / 6.0 + 0.5, 0.0, 1.0);
}
