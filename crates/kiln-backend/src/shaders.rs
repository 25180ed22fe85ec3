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
    MatmulVec4Nt,
    MatmulVec4Tn,
    MatmulTiled,
    BatchNorm,
    Optim,
    ElementwiseVec4,
    OptimVec4,
    BatchNormVec4,
    MatmulSmall,
    OptimMulti,
    OptimMultiVec4,
}

/// Every file of `shaders/`, compiled in.
const FILES: [(&str, &str); 23] = [
    (
        "activations.wgsl",
        include_str!("../../../shaders/activations.wgsl"),
    ),
    (
        "elementwise.wgsl",
        include_str!("../../../shaders/elementwise.wgsl"),
    ),
    ("hash.wgsl", include_str!("../../../shaders/hash.wgsl")),
    ("random.wgsl", include_str!("../../../shaders/random.wgsl")),
    ("reduce.wgsl", include_str!("../../../shaders/reduce.wgsl")),
    (
        "softmax.wgsl",
        include_str!("../../../shaders/softmax.wgsl"),
    ),
    (
        "matmul_common.wgsl",
        include_str!("../../../shaders/matmul_common.wgsl"),
    ),
    (
        "matmul_scalar_loads.wgsl",
        include_str!("../../../shaders/matmul_scalar_loads.wgsl"),
    ),
    (
        "matmul_blocked.wgsl",
        include_str!("../../../shaders/matmul_blocked.wgsl"),
    ),
    (
        "matmul_vec4.wgsl",
        include_str!("../../../shaders/matmul_vec4.wgsl"),
    ),
    (
        "matmul_vec4_nt.wgsl",
        include_str!("../../../shaders/matmul_vec4_nt.wgsl"),
    ),
    (
        "matmul_vec4_tn.wgsl",
        include_str!("../../../shaders/matmul_vec4_tn.wgsl"),
    ),
    (
        "matmul_tiled.wgsl",
        include_str!("../../../shaders/matmul_tiled.wgsl"),
    ),
    (
        "batchnorm.wgsl",
        include_str!("../../../shaders/batchnorm.wgsl"),
    ),
    (
        "adam_rule.wgsl",
        include_str!("../../../shaders/adam_rule.wgsl"),
    ),
    ("optim.wgsl", include_str!("../../../shaders/optim.wgsl")),
    (
        "elementwise_ops.wgsl",
        include_str!("../../../shaders/elementwise_ops.wgsl"),
    ),
    (
        "elementwise_vec4.wgsl",
        include_str!("../../../shaders/elementwise_vec4.wgsl"),
    ),
    (
        "optim_vec4.wgsl",
        include_str!("../../../shaders/optim_vec4.wgsl"),
    ),
    (
        "batchnorm_vec4.wgsl",
        include_str!("../../../shaders/batchnorm_vec4.wgsl"),
    ),
    (
        "matmul_small.wgsl",
        include_str!("../../../shaders/matmul_small.wgsl"),
    ),
    (
        "optim_multi.wgsl",
        include_str!("../../../shaders/optim_multi.wgsl"),
    ),
    (
        "optim_multi_vec4.wgsl",
        include_str!("../../../shaders/optim_multi_vec4.wgsl"),
    ),
];

impl ShaderId {
    /// Every module kiln builds.
    pub const ALL: [ShaderId; 17] = [
        ShaderId::Elementwise,
        ShaderId::Random,
        ShaderId::Reduce,
        ShaderId::Softmax,
        ShaderId::MatmulBlocked,
        ShaderId::MatmulVec4,
        ShaderId::MatmulVec4Nt,
        ShaderId::MatmulVec4Tn,
        ShaderId::MatmulTiled,
        ShaderId::BatchNorm,
        ShaderId::Optim,
        ShaderId::ElementwiseVec4,
        ShaderId::OptimVec4,
        ShaderId::BatchNormVec4,
        ShaderId::MatmulSmall,
        ShaderId::OptimMulti,
        ShaderId::OptimMultiVec4,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ShaderId::Elementwise => "elementwise",
            ShaderId::Random => "random",
            ShaderId::Reduce => "reduce",
            ShaderId::Softmax => "softmax",
            ShaderId::MatmulBlocked => "matmul_blocked",
            ShaderId::MatmulVec4 => "matmul_vec4",
            ShaderId::MatmulVec4Nt => "matmul_vec4_nt",
            ShaderId::MatmulVec4Tn => "matmul_vec4_tn",
            ShaderId::MatmulTiled => "matmul_tiled",
            ShaderId::BatchNorm => "batchnorm",
            ShaderId::Optim => "optim",
            ShaderId::ElementwiseVec4 => "elementwise_vec4",
            ShaderId::OptimVec4 => "optim_vec4",
            ShaderId::BatchNormVec4 => "batchnorm_vec4",
            ShaderId::MatmulSmall => "matmul_small",
            ShaderId::OptimMulti => "optim_multi",
            ShaderId::OptimMultiVec4 => "optim_multi_vec4",
        }
    }

    /// The files of `shaders/` this module is made of, in order.
    pub fn files(self) -> &'static [&'static str] {
        match self {
            ShaderId::Elementwise => &[
                "activations.wgsl",
                "elementwise_ops.wgsl",
                "elementwise.wgsl",
            ],
            ShaderId::ElementwiseVec4 => &[
                "activations.wgsl",
                "elementwise_ops.wgsl",
                "elementwise_vec4.wgsl",
            ],
            ShaderId::OptimVec4 => &["adam_rule.wgsl", "optim_vec4.wgsl"],
            ShaderId::BatchNormVec4 => &["hash.wgsl", "batchnorm_vec4.wgsl"],
            ShaderId::OptimMulti => &["adam_rule.wgsl", "optim_multi.wgsl"],
            ShaderId::OptimMultiVec4 => &["adam_rule.wgsl", "optim_multi_vec4.wgsl"],
            ShaderId::MatmulSmall => &[
                "activations.wgsl",
                "hash.wgsl",
                "matmul_common.wgsl",
                "matmul_scalar_loads.wgsl",
                "matmul_small.wgsl",
            ],
            ShaderId::Random => &["hash.wgsl", "random.wgsl"],
            ShaderId::Reduce => &["reduce.wgsl"],
            ShaderId::Softmax => &["softmax.wgsl"],
            ShaderId::MatmulBlocked => &[
                "activations.wgsl",
                "hash.wgsl",
                "matmul_common.wgsl",
                "matmul_scalar_loads.wgsl",
                "matmul_blocked.wgsl",
            ],
            ShaderId::MatmulVec4 => &[
                "activations.wgsl",
                "hash.wgsl",
                "matmul_common.wgsl",
                "matmul_vec4.wgsl",
            ],
            ShaderId::MatmulVec4Nt => &[
                "activations.wgsl",
                "hash.wgsl",
                "matmul_common.wgsl",
                "matmul_vec4_nt.wgsl",
            ],
            ShaderId::MatmulVec4Tn => &[
                "activations.wgsl",
                "hash.wgsl",
                "matmul_common.wgsl",
                "matmul_vec4_tn.wgsl",
            ],
            ShaderId::BatchNorm => &["hash.wgsl", "batchnorm.wgsl"],
            ShaderId::Optim => &["adam_rule.wgsl", "optim.wgsl"],
            ShaderId::MatmulTiled => &[
                "activations.wgsl",
                "hash.wgsl",
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
            ShaderId::MatmulBlocked
                | ShaderId::MatmulSmall
                | ShaderId::MatmulVec4
                | ShaderId::MatmulVec4Nt
                | ShaderId::MatmulVec4Tn
                | ShaderId::MatmulTiled
        )
    }

    /// The complete WGSL text: its files, in order.
    pub fn source(self) -> String {
        self.files()
            .iter()
            .map(|name| {
                FILES
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or("", |(_, text)| text)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}
