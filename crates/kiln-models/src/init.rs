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

/// `n` standard normal values (Box–Muller), drawn under `seed`.
fn standard_normal(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            let u1 = rng.next_f64().max(f64::MIN_POSITIVE);
            let u2 = rng.next_f64();
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        })
        .collect()
}

/// `n` values from a normal distribution of standard deviation `std`.
pub(crate) fn normal(n: usize, std: f64, seed: u64) -> Vec<f32> {
    standard_normal(n, seed)
        .into_iter()
        .map(|v| (v * std) as f32)
        .collect()
}

/// Keras' `Orthogonal` initialiser for a `[rows, cols]` matrix: the Q of a
/// QR decomposition of a standard normal matrix (columns orthonormal when
/// `rows ≥ cols`, rows orthonormal otherwise), drawn under `seed`.
pub(crate) fn orthogonal(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let (tall, short) = (rows.max(cols), rows.min(cols));
    // Standard normals, column by column of a tall × short matrix.
    let draws = standard_normal(tall * short, seed);
    let mut q: Vec<Vec<f64>> = draws.chunks(tall).map(<[f64]>::to_vec).collect();
    // Modified Gram–Schmidt: the diagonal of R comes out positive, which
    // is the sign correction Keras applies after its QR.
    for j in 0..short {
        let (done, rest) = q.split_at_mut(j);
        let col = &mut rest[0];
        for prev in done.iter() {
            let dot: f64 = col.iter().zip(prev).map(|(a, b)| a * b).sum();
            for (v, p) in col.iter_mut().zip(prev) {
                *v -= dot * p;
            }
        }
        let norm = q[j].iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-30);
        q[j].iter_mut().for_each(|v| *v /= norm);
    }
    let mut out = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            // Q is tall × short; a wide matrix takes its transpose.
            let v = if rows >= cols { q[c][r] } else { q[r][c] };
            out[r * cols + c] = v as f32;
        }
    }
    out
}
