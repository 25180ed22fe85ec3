//! Weight initialisers, seeded: Keras' Glorot-uniform and PyTorch's
//! Kaiming-uniform (its `nn.Linear` default).

use kiln_data::SplitMix64;

/// How a dense layer's weights and bias start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Init {
    /// Keras: kernel ~ U(±√(6/(fan_in + fan_out))), bias 0.
    #[default]
    GlorotUniform,
    /// PyTorch `nn.Linear`: weight and bias ~ U(±1/√fan_in) (Kaiming-uniform
    /// with a = √5).
    KaimingUniform,
}

/// `n` values uniform in ±`bound`, drawn under `seed`.
pub(crate) fn uniform(n: usize, bound: f64, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32)
        .collect()
}

impl Init {
    /// Weight values for a `fan_in × fan_out` layer and the bias values.
    pub fn values(self, fan_in: usize, fan_out: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
        let mut rng = SplitMix64::new(seed);
        let mut draw = |n: usize, bound: f64| -> Vec<f32> {
            (0..n)
                .map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32)
                .collect()
        };
        match self {
            Init::GlorotUniform => {
                let bound = (6.0 / (fan_in + fan_out) as f64).sqrt();
                (draw(fan_in * fan_out, bound), vec![0.0; fan_out])
            }
            Init::KaimingUniform => {
                let bound = 1.0 / (fan_in as f64).sqrt();
                let w = draw(fan_in * fan_out, bound);
                (w, draw(fan_out, bound))
            }
        }
    }
}
