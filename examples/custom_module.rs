//! A model written as a custom module, PyTorch's way — a residual block
//! whose input is added back to its output — and trained Keras' way, with
//! `compile` and `fit`, on the breast-cancer data. Ends with one JSON line.
//!
//! `cargo run --release --example custom_module`

use clap::Parser;
use kiln::prelude::*;

#[path = "harness/mod.rs"]
pub mod harness;

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

/// Trains the residual model for at most `--epochs` epochs (early stopping
/// on the validation loss) and evaluates it on the held-out 20 %.
pub fn run(device: &Device, run: &harness::Common) -> anyhow::Result<Outcome> {
    let data = CsvDataset::load(
        concat!(env!("CARGO_MANIFEST_DIR"), "/data/breast_cancer.csv"),
        "target",
    )?;
    let (mut train, mut test) = data.split(0.8, run.seed)?;
    let scaler = Standardizer::fit(&train);
    scaler.transform(&mut train)?;
    scaler.transform(&mut test)?;
    manual_seed(run.seed);
    let net = ResidualMlp::new(device, train.n_features())?;
    let parameters = net.num_parameters();
    let mut model = Model::new(device, net, [train.n_features()]);
    model.compile(
        Optimizer::adam(run.lr),
        Loss::BinaryCrossEntropy,
        &[Metric::BinaryAccuracy],
    )?;
    let summary = model.summary()?;
    run.say(&summary);
    let fit = run.fit().validation_split(0.2).callback(
        EarlyStopping::monitor("val_loss")
            .patience(5)
            .restore_best_weights(),
    );
    let history = model.fit(&train, fit)?;
    run.write_outputs(&history)?;
    let logs = model.evaluate(&test, run.batch_size)?;
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
#[command(mut_arg("epochs", |a| a.default_value("60")))]
pub struct Args {
    #[command(flatten)]
    pub common: harness::Common,
}

#[allow(dead_code)] // the tests include this file for `run`
fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let device = args.common.start()?;
    let out = run(&device, &args.common)?;
    println!(
        "{}",
        serde_json::json!({
            "test_accuracy": harness::num(out.test_accuracy),
            "test_loss": harness::num(out.test_loss),
            "epochs_run": out.epochs_run,
            "parameters": out.parameters,
            "device": device.name(),
        })
    );
    Ok(())
}
