//! The handwritten WGSL sources, compiled into the binary. A [`ShaderId`]
//! names a complete module: its files of `shaders/` in order. Generated
//! kernels (`crate::codegen`) start with the shared [`prelude`].

/// Every file of `shaders/`, compiled in.
const FILES: &[(&str, &str)] = &[
    (
        "activations.wgsl",
        include_str!("../../../shaders/activations.wgsl"),
    ),
    (
        "adam_rule.wgsl",
        include_str!("../../../shaders/adam_rule.wgsl"),
    ),
    (
        "elementwise_ops.wgsl",
        include_str!("../../../shaders/elementwise_ops.wgsl"),
    ),
    ("hash.wgsl", include_str!("../../../shaders/hash.wgsl")),
    ("optim.wgsl", include_str!("../../../shaders/optim.wgsl")),
    (
        "optim_multi.wgsl",
        include_str!("../../../shaders/optim_multi.wgsl"),
    ),
    (
        "optim_multi_vec4.wgsl",
        include_str!("../../../shaders/optim_multi_vec4.wgsl"),
    ),
    (
        "optim_vec4.wgsl",
        include_str!("../../../shaders/optim_vec4.wgsl"),
    ),
    ("random.wgsl", include_str!("../../../shaders/random.wgsl")),
    ("reduce.wgsl", include_str!("../../../shaders/reduce.wgsl")),
    (
        "softmax.wgsl",
        include_str!("../../../shaders/softmax.wgsl"),
    ),
];

/// One complete handwritten WGSL module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShaderId {
    Random,
    Reduce,
    Softmax,
    Optim,
    OptimVec4,
    OptimMulti,
    OptimMultiVec4,
}

impl ShaderId {
    /// Every handwritten module kiln builds.
    pub const ALL: &'static [ShaderId] = &[
        ShaderId::Random,
        ShaderId::Reduce,
        ShaderId::Softmax,
        ShaderId::Optim,
        ShaderId::OptimVec4,
        ShaderId::OptimMulti,
        ShaderId::OptimMultiVec4,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ShaderId::Random => "random",
            ShaderId::Reduce => "reduce",
            ShaderId::Softmax => "softmax",
            ShaderId::Optim => "optim",
            ShaderId::OptimVec4 => "optim_vec4",
            ShaderId::OptimMulti => "optim_multi",
            ShaderId::OptimMultiVec4 => "optim_multi_vec4",
        }
    }

    /// The files of `shaders/` this module is made of, in order.
    pub fn files(self) -> &'static [&'static str] {
        match self {
            ShaderId::Random => &["hash.wgsl", "random.wgsl"],
            ShaderId::Reduce => &["reduce.wgsl"],
            ShaderId::Softmax => &["softmax.wgsl"],
            ShaderId::Optim => &["adam_rule.wgsl", "optim.wgsl"],
            ShaderId::OptimVec4 => &["adam_rule.wgsl", "optim_vec4.wgsl"],
            ShaderId::OptimMulti => &["adam_rule.wgsl", "optim_multi.wgsl"],
            ShaderId::OptimMultiVec4 => &["adam_rule.wgsl", "optim_multi_vec4.wgsl"],
        }
    }

    /// The complete WGSL text: its files, in order.
    pub fn source(self) -> String {
        join(self.files())
    }
}

fn join(files: &[&str]) -> String {
    files
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

/// The files every generated module starts with (`codegen::PRELUDE`), joined.
pub fn prelude() -> String {
    join(&crate::codegen::PRELUDE)
}

/// Every file name of `shaders/` compiled in.
pub fn file_names() -> impl Iterator<Item = &'static str> {
    FILES.iter().map(|(n, _)| *n)
}
