//! The tutorial's MLP, in one place for the example, the benches and the
//! tests.

use kiln_backend::Device;

use crate::layers::Activation;
use crate::sequential::Sequential;

/// The tutorial's dropout rates, after the first and the second hidden layer.
pub const TUTORIAL_DROPOUT: [f32; 2] = [0.3, 0.2];

/// The tutorial's MLP with Keras' names and initialisation, seeded:
/// `features → Dense(128, relu) → BatchNormalization → Dropout(dropout[0])
/// → Dense(64, relu) → BatchNormalization → Dropout(dropout[1]) →
/// Dense(1, sigmoid)`. Uncompiled: the tutorial compiles it with
/// `Optimizer::adam(1e-3)`, `Loss::BinaryCrossEntropy` and
/// `Metric::BinaryAccuracy`.
///
/// ```no_run
/// use kiln_models::{tutorial_mlp, Loss, Metric, Optimizer, TUTORIAL_DROPOUT};
/// let device = kiln_backend::Device::auto()?;
/// let mut model = tutorial_mlp(&device, 30, 42, TUTORIAL_DROPOUT);
/// model.compile(Optimizer::adam(1e-3), Loss::BinaryCrossEntropy, &[Metric::BinaryAccuracy])?;
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn tutorial_mlp(device: &Device, features: usize, seed: u64, dropout: [f32; 2]) -> Sequential {
    Sequential::new(device, features)
        .seed(seed)
        .dense(128, Activation::Relu)
        .batch_norm()
        .dropout(dropout[0])
        .dense(64, Activation::Relu)
        .batch_norm()
        .dropout(dropout[1])
        .dense(1, Activation::Sigmoid)
}
