//! A model written as a custom module, PyTorch's way — a residual block
//! whose input is added back to its output — and trained Keras' way, with
//! `compile` and `fit`, on the breast-cancer data. Ends with one JSON line.
//!
//! `cargo run --release --example custom_module`

use clap::Parser;
use kiln::prelude::*;

/// 30 features → 64 → [64 → 64, plus the skip] → 1 probability.
pub struct ResidualMlp {
    pub stem: Linear,
    pub norm: BatchNorm,
    pub block1: Linear,
    pub block2: Linear,
    pub dropout: Dropout,
    pub head: Linear,
}

impl ResidualMlp {
    pub fn new(device: &Device, features: usize) -> kiln::models::Result<Self> {
        Ok(Self {
            stem: Linear::new(device, features, 64)?,
            norm: BatchNorm::pytorch(device, 64)?,
            block1: Linear::new(device, 64, 64)?,
            block2: Linear::new(device, 64, 64)?,
            dropout: Dropout::new(0.2)?,
            head: Linear::new(device, 64, 1)?,
        })
    }
}

impl Module for ResidualMlp {
    fn forward(&self, x: &Var) -> kiln::models::Result<Var> {
        let h = self.norm.forward(&self.stem.forward(x)?)?.relu()?;
        let r = self.block2.forward(&self.block1.forward(&h)?.relu()?)?;
        let h = (&h + &r)?.relu()?;
        Ok(self.head.forward(&self.dropout.forward(&h)?)?.sigmoid()?)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        v.module("stem", &self.stem);
        v.module("norm", &self.norm);
        v.module("block1", &self.block1);
        v.module("block2", &self.block2);
        v.module("dropout", &self.dropout);
        v.module("head", &self.head);
    }
}

/// What a run reports.
pub struct Outcome {
    pub test_accuracy: f32,
    pub test_loss: f32,
    pub epochs_run: usize,
    pub parameters: usize,
    /// `Model::summary` before training: the module tree, as its names give it.
    pub summary: String,
}

/// Trains the residual model for at most `epochs` epochs (early stopping
/// on the validation loss) and evaluates it on the held-out 20 %.
pub fn run(
    device: &Device,
    epochs: usize,
    seed: u64,
    verbosity: Verbosity,
) -> anyhow::Result<Outcome> {
    let data = CsvDataset::load(
        concat!(env!("CARGO_MANIFEST_DIR"), "/data/breast_cancer.csv"),
        "target",
    )?;
    let (mut train, mut test) = data.split(0.8, seed)?;
    let scaler = Standardizer::fit(&train);
    scaler.transform(&mut train)?;
    scaler.transform(&mut test)?;
    manual_seed(seed);
    let net = ResidualMlp::new(device, train.n_features())?;
    let parameters = net.num_parameters();
    let mut model = Model::new(device, net, [train.n_features()]);
    model.compile(
        Optimizer::adam(1e-3),
        Loss::BinaryCrossEntropy,
        &[Metric::BinaryAccuracy],
    )?;
    let summary = model.summary()?;
    if verbosity != Verbosity::Silent {
        println!("{summary}");
    }
    let history = model.fit(
        &train,
        Fit::epochs(epochs)
            .validation_split(0.2)
            .shuffle(Some(seed))
            .verbosity(verbosity)
            .callback(
                EarlyStopping::monitor("val_loss")
                    .patience(5)
                    .restore_best_weights(),
            ),
    )?;
    let logs = model.evaluate(&test, 32)?;
    Ok(Outcome {
        test_accuracy: logs.metrics[0].1,
        test_loss: logs.loss,
        epochs_run: history.epochs.len(),
        parameters,
        summary,
    })
}

#[derive(Parser)]
#[command(about = "Train a residual MLP written as a custom module")]
struct Args {
    #[arg(long, default_value_t = 60)]
    epochs: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// gpu, software, or part of an adapter's name (default: KILN_DEVICE, else the best).
    #[arg(long)]
    device: Option<String>,
    #[arg(long)]
    quiet: bool,
}

#[allow(dead_code)] // the tests include this file for `run`
fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let device = kiln::device_from_flag(args.device.as_deref())?;
    let verbosity = if args.quiet {
        Verbosity::Silent
    } else {
        Verbosity::Auto
    };
    let out = run(&device, args.epochs, args.seed, verbosity)?;
    println!(
        "{}",
        serde_json::json!({
            "test_accuracy": out.test_accuracy,
            "test_loss": out.test_loss,
            "epochs_run": out.epochs_run,
            "parameters": out.parameters,
            "device": device.name(),
        })
    );
    Ok(())
}
