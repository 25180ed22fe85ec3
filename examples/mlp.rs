//! The tutorial's MLP on the breast-cancer data set (Wisconsin diagnostic;
//! target 1 = benign, 0 = malignant): a seeded 80/20 hold-out, features
//! standardised on the training part, Keras' model, optimizer, loss and fit
//! loop with early stopping. Ends with one JSON line of results.

use std::time::Instant;

use clap::Parser;
use kiln::prelude::*;

#[derive(Parser)]
#[command(about = "Train the tutorial's MLP on data/breast_cancer.csv")]
struct Args {
    /// Most epochs to train (early stopping usually ends sooner).
    #[arg(long, default_value_t = 100)]
    epochs: usize,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Seed of the hold-out split, initial weights, dropout and shuffling.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// gpu, software, or part of an adapter's name (default: KILN_DEVICE, else the best).
    #[arg(long)]
    device: Option<String>,
    /// Print only the final JSON line.
    #[arg(long)]
    quiet: bool,
    /// Also write the per-epoch history as CSV.
    #[arg(long)]
    history: Option<std::path::PathBuf>,
    /// Also plot the loss and accuracy curves (train and validation) to FILE.svg or FILE.png.
    #[arg(long)]
    plot: Option<std::path::PathBuf>,
    /// The CSV file (default: the copy in data/).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/breast_cancer.csv"))]
    data: std::path::PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Checked now: a typo in a folder name must not cost the whole run.
    for path in args.history.iter().chain(&args.plot) {
        kiln::models::check_writable(path)?;
    }
    let device = kiln::device_from_flag(args.device.as_deref())?;
    let data = CsvDataset::load(&args.data, "target")?;
    let (mut train, mut test) = data.split(0.8, args.seed)?;
    let scaler = Standardizer::fit(&train);
    scaler.transform(&mut train)?;
    scaler.transform(&mut test)?;

    let mut model = Sequential::new(&device, train.n_features())
        .seed(args.seed)
        .dense(128, Activation::Relu)
        .batch_norm()
        .dropout(0.3)
        .dense(64, Activation::Relu)
        .batch_norm()
        .dropout(0.2)
        .dense(1, Activation::Sigmoid);
    model.compile(
        Optimizer::adam(1e-3),
        Loss::BinaryCrossEntropy,
        &[Metric::BinaryAccuracy],
    )?;
    if !args.quiet {
        println!("device: {}", device.name());
        println!("{}", model.summary()?);
    }

    let fit = Fit::epochs(args.epochs)
        .batch_size(args.batch_size)
        .validation_split(0.2)
        .shuffle(Some(args.seed))
        .verbosity(if args.quiet {
            Verbosity::Silent
        } else {
            Verbosity::Auto
        })
        .callback(
            EarlyStopping::monitor("val_loss")
                .patience(5)
                .restore_best_weights(),
        );
    let start = Instant::now();
    let history = model.fit(&train, fit)?;
    let train_seconds = start.elapsed().as_secs_f64();
    let test_logs = model.evaluate(&test, args.batch_size)?;
    if let Some(path) = &args.history {
        history.save_csv(path)?;
        if !args.quiet {
            println!("wrote the history to {}", path.display());
        }
    }
    if let Some(path) = &args.plot {
        history.plot(path)?;
        if !args.quiet {
            println!("wrote the plot to {}", path.display());
        }
    }
    if !args.quiet {
        println!("{}", history.summary());
    }
    let accuracy = test_logs
        .metrics
        .iter()
        .find(|(n, _)| n == "accuracy")
        .map(|(_, v)| *v);
    println!(
        "{}",
        serde_json::json!({
            "test_accuracy": accuracy,
            "test_loss": test_logs.loss,
            "epochs_run": history.epochs.len(),
            "best_epoch": history.best_epoch,
            "stopped_early": history.stopped_early,
            "restored_best_weights": history.restored_best,
            "train_seconds": (train_seconds * 1000.0).round() / 1000.0,
            "device": device.name(),
        })
    );
    Ok(())
}
