//! The WGSL sources, compiled into the binary. Some kernels share a prelude
//! (`matmul_common.wgsl`); a [`ShaderId`] names a complete module.

/// One complete WGSL module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShaderId {
    Elementwise,
    Random,
    Reduce,
    Softmax,
    MatmulBlocked,
    MatmulVec4,
    MatmulTiled,
}

const ELEMENTWISE: &str = include_str!("../../../shaders/elementwise.wgsl");
const RANDOM: &str = include_str!("../../../shaders/random.wgsl");
const REDUCE: &str = include_str!("../../../shaders/reduce.wgsl");
const SOFTMAX: &str = include_str!("../../../shaders/softmax.wgsl");
const MATMUL_COMMON: &str = include_str!("../../../shaders/matmul_common.wgsl");
const MATMUL_SCALAR_LOADS: &str = include_str!("../../../shaders/matmul_scalar_loads.wgsl");
const MATMUL_VEC4: &str = include_str!("../../../shaders/matmul_vec4.wgsl");
const MATMUL_BLOCKED: &str = include_str!("../../../shaders/matmul_blocked.wgsl");
const MATMUL_TILED: &str = include_str!("../../../shaders/matmul_tiled.wgsl");

impl ShaderId {
    /// Every module kiln builds.
    pub const ALL: [ShaderId; 7] = [
        ShaderId::Elementwise,
        ShaderId::Random,
        ShaderId::Reduce,
        ShaderId::Softmax,
        ShaderId::MatmulBlocked,
        ShaderId::MatmulVec4,
        ShaderId::MatmulTiled,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ShaderId::Elementwise => "elementwise",
            ShaderId::Random => "random",
            ShaderId::Reduce => "reduce",
            ShaderId::Softmax => "softmax",
            ShaderId::MatmulBlocked => "matmul_blocked",
            ShaderId::MatmulVec4 => "matmul_vec4",
            ShaderId::MatmulTiled => "matmul_tiled",
        }
    }

    /// The files of `shaders/` this module is made of, in order.
    pub fn files(self) -> &'static [&'static str] {
        match self {
            ShaderId::Elementwise => &["elementwise.wgsl"],
            ShaderId::Random => &["random.wgsl"],
            ShaderId::Reduce => &["reduce.wgsl"],
            ShaderId::Softmax => &["softmax.wgsl"],
            ShaderId::MatmulBlocked => &[
                "matmul_common.wgsl",
                "matmul_scalar_loads.wgsl",
                "matmul_blocked.wgsl",
            ],
            ShaderId::MatmulVec4 => &["matmul_common.wgsl", "matmul_vec4.wgsl"],
            ShaderId::MatmulTiled => &[
                "matmul_common.wgsl",
                "matmul_scalar_loads.wgsl",
                "matmul_tiled.wgsl",
            ],
        }
    }

    /// True for modules whose every memory access the launcher proves in
    /// bounds on the host; they are built without per-access bounds checks.
    pub fn host_checked(self) -> bool {
        matches!(
            self,
            ShaderId::MatmulBlocked | ShaderId::MatmulVec4 | ShaderId::MatmulTiled
        )
    }

    /// The complete WGSL text.
    pub fn source(self) -> String {
        match self {
            ShaderId::Elementwise => ELEMENTWISE.to_string(),
            ShaderId::Random => RANDOM.to_string(),
            ShaderId::Reduce => REDUCE.to_string(),
            ShaderId::Softmax => SOFTMAX.to_string(),
            ShaderId::MatmulBlocked => {
                format!("{MATMUL_COMMON}\n{MATMUL_SCALAR_LOADS}\n{MATMUL_BLOCKED}")
            }
            ShaderId::MatmulVec4 => format!("{MATMUL_COMMON}\n{MATMUL_VEC4}"),
            ShaderId::MatmulTiled => {
                format!("{MATMUL_COMMON}\n{MATMUL_SCALAR_LOADS}\n{MATMUL_TILED}")
            }
        }
    }
}
