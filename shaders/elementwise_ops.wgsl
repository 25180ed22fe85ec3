// The elementwise operations themselves, shared by the strided kernels
// (elementwise.wgsl) and the vec4 ones (elementwise_vec4.wgsl). OP picks the
// operation and is folded by the compiler; `param_word` (reading the
// parameter words) is defined by the including module, with the scalar parameter in word 2.
// (Prefixed by activations.wgsl.)

override OP: u32 = 0u;

fn param() -> f32 {
    return bitcast<f32>(param_word(2u));
}

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

fn apply_unary(x: f32) -> f32 {
    switch OP {
        case 0u: { return x; }
        case 1u: { return -x; }
        case 2u: { return exp(x); }
        case 3u: { return log(x); }
        case 4u: { return sqrt(x); }
        case 5u: { return abs(x); }
        case 6u: { return relu(x); }
        case 7u: { return select(param() * x, x, x >= 0.0); }
        case 8u: { return stable_sigmoid(x); }
        case 9u: { return stable_tanh(x); }
        case 10u: { return 1.0 / x; }
        case 11u: { return x * x; }
        case 12u: { return sign(x); }
        case 13u: { return select(0.0, 1.0, x > 0.0); }
        case 14u: { return x * param(); }
        case 15u: { return x + param(); }
        case 16u: { return real_pow(x, param()); }
        case 17u: { return inverseSqrt(x); }
        default: { return x; }
    }
}

const BCE_EPSILON: f32 = 1e-7;

// log(1 + t) for t in [0, 1], accurate also where 1 + t rounds to 1.
fn log1p_small(t: f32) -> f32 {
    if (t < 1e-4) { return t - 0.5 * t * t; }
    return log(1.0 + t);
}

fn apply_binary(x: f32, y: f32) -> f32 {
    return binary_op(OP, x, y);
}

// The binary operation `code` (OP, or a code read at run time).
fn binary_op(code: u32, x: f32, y: f32) -> f32 {
    switch code {
        case 0u: { return x + y; }
        case 1u: { return x - y; }
        case 2u: { return x * y; }
        case 3u: { return x / y; }
        case 4u: { return max(x, y); }
        case 5u: { return min(x, y); }
        case 6u: { return real_pow(x, y); }
        case 7u: { return select(0.0, 1.0, x == y); }
        case 8u: { return select(0.0, 1.0, x != y); }
        case 9u: { return select(0.0, 1.0, x < y); }
        case 10u: { return select(0.0, 1.0, x <= y); }
        case 11u: { return select(0.0, 1.0, x > y); }
        case 12u: { return select(0.0, 1.0, x >= y); }
        case 13u: { return select(0.0, y, x > 0.0); }
        case 14u: { return y * x * (1.0 - x); }
        case 15u: { return y * (1.0 - x * x); }
        case 16u: {
            // clamp would turn a NaN probability into a finite loss
            if (is_nan(x)) { return x; }
            let p = clamp(x, BCE_EPSILON, 1.0 - BCE_EPSILON);
            return -(y * log(p) + (1.0 - y) * log(1.0 - p));
        }
        case 17u: {
            if (x < BCE_EPSILON || x > 1.0 - BCE_EPSILON) { return 0.0; }
            return -y / x + (1.0 - y) / (1.0 - x);
        }
        // log(1 + e^-|x|) through log1p's series where e^-|x| is tiny
        case 18u: { return max(x, 0.0) - x * y + log1p_small(exp(-abs(x))); }
        case 19u: { return stable_sigmoid(x) - y; }
        case 20u: { return select(0.0, 1.0, (x > 0.5) == (y > 0.5)); }
        // sigmoid output x, target y: the clipped cross-entropy's gradient
        // through the sigmoid, p − y, without the cancellation of the product
        case 21u: {
            if (x < BCE_EPSILON || x > 1.0 - BCE_EPSILON) { return 0.0; }
            return x - y;
        }
        default: { return x; }
    }
}

