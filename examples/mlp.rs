//! The tutorial's MLP on the breast-cancer data set (Wisconsin diagnostic;
//! target 1 = benign, 0 = malignant): a seeded 80/20 hold-out, features
//! standardised on the training part, Keras' model, optimizer, loss and fit
//! loop with early stopping. Ends with one JSON line of results.

use std::time::Instant;

use clap::Parser;
use kiln::prelude::*;

#[path = "harness/mod.rs"]
mod harness;

#[derive(Parser)]
#[command(about = "Train the tutorial's MLP on data/breast_cancer.csv")]
#[command(mut_arg("epochs", |a| a.default_value("100")))]
struct Args {
    #[command(flatten)]
    common: harness::Common,
    /// The CSV file.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/breast_cancer.csv"))]
    data: std::path::PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let run = &args.common;
    let device = run.start()?;
    let data = CsvDataset::load(&args.data, "target")?;
    let (mut train, mut test) = data.split(0.8, run.seed)?;
    let scaler = Standardizer::fit(&train);
    scaler.transform(&mut train)?;
    scaler.transform(&mut test)?;

    let mut model = tutorial_mlp(&device, train.n_features(), run.seed, TUTORIAL_DROPOUT);
    model.compile(
        Optimizer::adam(run.lr),
        Loss::BinaryCrossEntropy,
        &[Metric::BinaryAccuracy],
    )?;
    run.say(format!("device: {}", device.name()));
    run.say(model.summary()?);

    let fit = run.fit().validation_split(0.2).callback(
        EarlyStopping::monitor("val_loss")
            .patience(5)
            .restore_best_weights(),
    );
    let start = Instant::now();
    let history = model.fit(&train, fit)?;
    let train_seconds = start.elapsed().as_secs_f64();
    let test_logs = model.evaluate(&test, run.batch_size)?;
    run.write_outputs(&history)?;
    run.say(history.summary());
    run.say(format!("test: {test_logs}"));
    let accuracy = test_logs
        .metrics
        .iter()
        .find(|(n, _)| n == "accuracy")
        .map(|(_, v)| harness::num(*v));
    println!(
        "{}",
        serde_json::json!({
            "test_accuracy": accuracy,
            "test_loss": harness::num(test_logs.loss),
            "epochs_run": history.epochs.len(),
            "best_epoch": history.best_epoch,
            "stopped_early": history.stopped_early,
            "restored_best_weights": history.restored_best,
            "train_seconds": harness::seconds(train_seconds, 3),
            "device": device.name(),
        })
    );
    Ok(())
}
