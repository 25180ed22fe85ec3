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
        "elementwise_ops.wgsl",
        include_str!("../../../shaders/elementwise_ops.wgsl"),
    ),
    ("hash.wgsl", include_str!("../../../shaders/hash.wgsl")),
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
}

impl ShaderId {
    /// Every handwritten module kiln builds.
    pub const ALL: &'static [ShaderId] = &[ShaderId::Random, ShaderId::Reduce, ShaderId::Softmax];

    pub fn name(self) -> &'static str {
        match self {
            ShaderId::Random => "random",
            ShaderId::Reduce => "reduce",
            ShaderId::Softmax => "softmax",
        }
    }

    /// The files of `shaders/` this module is made of, in order.
    pub fn files(self) -> &'static [&'static str] {
        match self {
            ShaderId::Random => &["hash.wgsl", "random.wgsl"],
            ShaderId::Reduce => &["reduce.wgsl"],
            ShaderId::Softmax => &["softmax.wgsl"],
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
