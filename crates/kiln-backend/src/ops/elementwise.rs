//! The elementwise operations: each with its f64 reference (what tests hold
//! kernels to) and its WGSL expression (what generated kernels compute), side
//! by side, so an operation is defined in one place.

/// One-input elementwise operations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    Identity,
    Neg,
    Exp,
    Log,
    Sqrt,
    Abs,
    Relu,
    LeakyRelu(f32),
    Sigmoid,
    Tanh,
    Recip,
    Square,
    Sign,
    /// The largest integer not above x.
    Floor,
    /// 1 where x > 0, else 0 (the derivative of relu).
    Step,
    Scale(f32),
    AddScalar(f32),
    PowScalar(f32),
    Rsqrt,
    /// Keras' hard sigmoid, `clip(x/6 + 1/2, 0, 1)`.
    HardSigmoid,
    /// `x · sigmoid(x)`: PyTorch's SiLU, Keras' `silu` (or `swish`).
    Silu,
}

impl UnaryOp {
    /// Every op once, those with a setting at typical ones: what the kernel
    /// and gradient tests sweep, so that listing a new op here is what
    /// tests it.
    pub const EXAMPLES: &'static [UnaryOp] = &[
        UnaryOp::Identity,
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Abs,
        UnaryOp::Relu,
        UnaryOp::LeakyRelu(0.1),
        UnaryOp::Sigmoid,
        UnaryOp::Tanh,
        UnaryOp::Recip,
        UnaryOp::Square,
        UnaryOp::Sign,
        UnaryOp::Floor,
        UnaryOp::Step,
        UnaryOp::Scale(-2.5),
        UnaryOp::AddScalar(0.75),
        UnaryOp::PowScalar(3.0),
        UnaryOp::PowScalar(0.5),
        UnaryOp::Rsqrt,
        UnaryOp::HardSigmoid,
        UnaryOp::Silu,
    ];

    /// Inputs that exercise the op, its saturating tails included, inside
    /// its domain: positive for logarithms, roots, reciprocals and
    /// fractional powers.
    pub fn sample_range(self) -> (f64, f64) {
        match self {
            UnaryOp::Exp => (-10.0, 10.0),
            UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt => (0.01, 100.0),
            UnaryOp::Sigmoid | UnaryOp::Silu => (-20.0, 20.0),
            UnaryOp::Tanh | UnaryOp::HardSigmoid => (-5.0, 5.0),
            UnaryOp::Recip => (0.1, 10.0),
            UnaryOp::PowScalar(p) if p.fract() != 0.0 => (0.01, 9.0),
            UnaryOp::Identity
            | UnaryOp::Neg
            | UnaryOp::Abs
            | UnaryOp::Relu
            | UnaryOp::LeakyRelu(_)
            | UnaryOp::Square
            | UnaryOp::Sign
            | UnaryOp::Floor
            | UnaryOp::Step
            | UnaryOp::Scale(_)
            | UnaryOp::AddScalar(_)
            | UnaryOp::PowScalar(_) => (-3.0, 3.0),
        }
    }

    /// Whether the op's derivative is zero wherever it exists (sign, step,
    /// floor): it passes no gradient.
    pub fn piecewise_constant(self) -> bool {
        matches!(self, UnaryOp::Sign | UnaryOp::Step | UnaryOp::Floor)
    }

    /// The f64 value this op computes, the reference the tests hold kernels to.
    pub fn reference(self, x: f64) -> f64 {
        match self {
            UnaryOp::Identity => x,
            UnaryOp::Neg => -x,
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Abs => x.abs(),
            UnaryOp::Relu => {
                if x.is_nan() {
                    x
                } else {
                    x.max(0.0)
                }
            }
            UnaryOp::LeakyRelu(a) => {
                if x >= 0.0 {
                    x
                } else {
                    a as f64 * x
                }
            }
            UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Recip => 1.0 / x,
            UnaryOp::Square => x * x,
            UnaryOp::Floor => x.floor(),
            UnaryOp::Sign => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }
            UnaryOp::Step => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            UnaryOp::Scale(s) => x * s as f64,
            UnaryOp::AddScalar(s) => x + s as f64,
            UnaryOp::PowScalar(p) => real_pow(x, p as f64),
            UnaryOp::Rsqrt => 1.0 / x.sqrt(),
            UnaryOp::HardSigmoid => (x / 6.0 + 0.5).clamp(0.0, 1.0),
            UnaryOp::Silu => x / (1.0 + (-x).exp()),
        }
    }

    /// The op's scalar setting, for ops that have one.
    pub fn parameter(self) -> Option<f32> {
        match self {
            UnaryOp::LeakyRelu(p)
            | UnaryOp::Scale(p)
            | UnaryOp::AddScalar(p)
            | UnaryOp::PowScalar(p) => Some(p),
            _ => None,
        }
    }

    /// The WGSL expression of the op on `x`; `p` is the expression of its
    /// scalar setting (see [`UnaryOp::parameter`]), read at run time so that
    /// kernels differing only in it share a pipeline.
    pub fn wgsl(self, x: &str, p: &str) -> String {
        match self {
            UnaryOp::Identity => x.to_string(),
            UnaryOp::Neg => format!("(-{x})"),
            UnaryOp::Exp => format!("exp({x})"),
            UnaryOp::Log => format!("log({x})"),
            UnaryOp::Sqrt => format!("sqrt({x})"),
            UnaryOp::Abs => format!("abs({x})"),
            UnaryOp::Relu => format!("relu({x})"),
            UnaryOp::LeakyRelu(_) => format!("select({p} * {x}, {x}, {x} >= 0.0)"),
            UnaryOp::Sigmoid => format!("stable_sigmoid({x})"),
            UnaryOp::Tanh => format!("stable_tanh({x})"),
            UnaryOp::Recip => format!("(1.0 / {x})"),
            UnaryOp::Square => format!("({x} * {x})"),
            UnaryOp::Sign => format!("sign({x})"),
            UnaryOp::Floor => format!("floor({x})"),
            UnaryOp::Step => format!("select(0.0, 1.0, {x} > 0.0)"),
            UnaryOp::Scale(_) => format!("({x} * {p})"),
            UnaryOp::AddScalar(_) => format!("({x} + {p})"),
            UnaryOp::PowScalar(_) => format!("real_pow({x}, {p})"),
            UnaryOp::Rsqrt => format!("inverseSqrt({x})"),
            UnaryOp::HardSigmoid => format!("hard_sigmoid({x})"),
            UnaryOp::Silu => format!("({x} * stable_sigmoid({x}))"),
        }
    }

    /// A short lower-case name, for kernel labels.
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Identity => "copy",
            UnaryOp::Neg => "neg",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Abs => "abs",
            UnaryOp::Relu => "relu",
            UnaryOp::LeakyRelu(_) => "leaky_relu",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Recip => "recip",
            UnaryOp::Square => "square",
            UnaryOp::Sign => "sign",
            UnaryOp::Floor => "floor",
            UnaryOp::Step => "step",
            UnaryOp::Scale(_) => "scale",
            UnaryOp::AddScalar(_) => "add_scalar",
            UnaryOp::PowScalar(_) => "pow_scalar",
            UnaryOp::Rsqrt => "rsqrt",
            UnaryOp::HardSigmoid => "hard_sigmoid",
            UnaryOp::Silu => "silu",
        }
    }
}

/// Two-input elementwise operations with NumPy broadcasting. Comparisons give
/// 1.0 or 0.0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
    Pow,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `b · (a > 0)`: relu's backward from its output `a` and upstream `b`.
    ReluGrad,
    /// `b · a · (1 − a)`: sigmoid's backward from its output.
    SigmoidGrad,
    /// `b · (1 − a²)`: tanh's backward from its output.
    TanhGrad,
    /// `b / 6` where `−3 < a < 3`, else 0: hard sigmoid's backward from its input.
    HardSigmoidGrad,
    /// Binary cross-entropy of probability `a` against target `b`, with `a`
    /// clipped to `[1e-7, 1 − 1e-7]` as Keras does.
    BceTerm,
    /// d [`BinaryOp::BceTerm`] / d`a` (zero where the clip is active).
    BceGrad,
    /// Binary cross-entropy of logit `a` against target `b`, computed stably.
    BceLogitsTerm,
    /// d [`BinaryOp::BceLogitsTerm`] / d`a` = sigmoid(a) − b.
    BceLogitsGrad,
    /// 1 where `a > 0.5` agrees with `b > 0.5` (Keras' binary accuracy).
    BinaryAccuracy,
}

/// The probability clip of Keras' binary cross-entropy (its backend epsilon).
pub const BCE_EPSILON: f64 = 1e-7;

impl BinaryOp {
    /// The f64 value this op computes.
    pub fn reference(self, x: f64, y: f64) -> f64 {
        let b = |c: bool| if c { 1.0 } else { 0.0 };
        match self {
            BinaryOp::Add => x + y,
            BinaryOp::Sub => x - y,
            BinaryOp::Mul => x * y,
            BinaryOp::Div => x / y,
            BinaryOp::Max => x.max(y),
            BinaryOp::Min => x.min(y),
            BinaryOp::Pow => real_pow(x, y),
            BinaryOp::Eq => b(x == y),
            BinaryOp::Ne => b(x != y),
            BinaryOp::Lt => b(x < y),
            BinaryOp::Le => b(x <= y),
            BinaryOp::Gt => b(x > y),
            BinaryOp::Ge => b(x >= y),
            BinaryOp::ReluGrad => y * b(x > 0.0),
            BinaryOp::SigmoidGrad => y * x * (1.0 - x),
            BinaryOp::TanhGrad => y * (1.0 - x * x),
            BinaryOp::HardSigmoidGrad => y * b(x > -3.0 && x < 3.0) / 6.0,
            BinaryOp::BceTerm => {
                let p = x.clamp(BCE_EPSILON, 1.0 - BCE_EPSILON);
                -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
            }
            BinaryOp::BceGrad => {
                if (BCE_EPSILON..=1.0 - BCE_EPSILON).contains(&x) {
                    -y / x + (1.0 - y) / (1.0 - x)
                } else {
                    0.0
                }
            }
            BinaryOp::BceLogitsTerm => x.max(0.0) - x * y + (-x.abs()).exp().ln_1p(),
            BinaryOp::BceLogitsGrad => 1.0 / (1.0 + (-x).exp()) - y,
            BinaryOp::BinaryAccuracy => b((x > 0.5) == (y > 0.5)),
        }
    }

    /// The WGSL expression of the op on `a` and `b`.
    pub fn wgsl(self, a: &str, b: &str) -> String {
        let flag = |cond: String| format!("select(0.0, 1.0, {cond})");
        match self {
            BinaryOp::Add => format!("({a} + {b})"),
            BinaryOp::Sub => format!("({a} - {b})"),
            BinaryOp::Mul => format!("({a} * {b})"),
            BinaryOp::Div => format!("({a} / {b})"),
            BinaryOp::Max => format!("max({a}, {b})"),
            BinaryOp::Min => format!("min({a}, {b})"),
            BinaryOp::Pow => format!("real_pow({a}, {b})"),
            BinaryOp::Eq => flag(format!("{a} == {b}")),
            BinaryOp::Ne => flag(format!("{a} != {b}")),
            BinaryOp::Lt => flag(format!("{a} < {b}")),
            BinaryOp::Le => flag(format!("{a} <= {b}")),
            BinaryOp::Gt => flag(format!("{a} > {b}")),
            BinaryOp::Ge => flag(format!("{a} >= {b}")),
            BinaryOp::ReluGrad => format!("select(0.0, {b}, {a} > 0.0)"),
            BinaryOp::SigmoidGrad => format!("({b} * {a} * (1.0 - {a}))"),
            BinaryOp::TanhGrad => format!("({b} * (1.0 - {a} * {a}))"),
            BinaryOp::HardSigmoidGrad => {
                format!("select(0.0, {b} / 6.0, {a} > -3.0 && {a} < 3.0)")
            }
            BinaryOp::BceTerm => format!("bce_term({a}, {b})"),
            BinaryOp::BceGrad => format!("bce_grad({a}, {b})"),
            BinaryOp::BceLogitsTerm => format!("bce_logits_term({a}, {b})"),
            BinaryOp::BceLogitsGrad => format!("(stable_sigmoid({a}) - {b})"),
            BinaryOp::BinaryAccuracy => flag(format!("({a} > 0.5) == ({b} > 0.5)")),
        }
    }

    /// A short lower-case name, for kernel labels.
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Max => "max",
            BinaryOp::Min => "min",
            BinaryOp::Pow => "pow",
            BinaryOp::Eq => "eq",
            BinaryOp::Ne => "ne",
            BinaryOp::Lt => "lt",
            BinaryOp::Le => "le",
            BinaryOp::Gt => "gt",
            BinaryOp::Ge => "ge",
            BinaryOp::ReluGrad => "relu_grad",
            BinaryOp::SigmoidGrad => "sigmoid_grad",
            BinaryOp::TanhGrad => "tanh_grad",
            BinaryOp::HardSigmoidGrad => "hard_sigmoid_grad",
            BinaryOp::BceTerm => "bce",
            BinaryOp::BceGrad => "bce_grad",
            BinaryOp::BceLogitsTerm => "bce_logits",
            BinaryOp::BceLogitsGrad => "bce_logits_grad",
            BinaryOp::BinaryAccuracy => "binary_accuracy",
        }
    }
}

fn real_pow(x: f64, y: f64) -> f64 {
    if x < 0.0 && y == y.floor() {
        let r = (-x).powf(y);
        if (y % 2.0).abs() == 1.0 {
            -r
        } else {
            r
        }
    } else {
        x.powf(y)
    }
}
