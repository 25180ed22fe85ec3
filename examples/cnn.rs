//! The tutorial's SimpleCNN on images. By default the Fashion-MNIST subset
//! in data/ (10 000 training and 2 000 test images, 28×28 grey, padded to
//! the 32×32 the model takes); `--data DIR` reads any folder holding the
//! four IDX files, CIFAR-10's binary batches, or an ImageFolder tree.
//! Softmax cross-entropy, Adam, a progress bar; ends with one JSON line.
//!
//! `cargo run --release --example cnn`

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
#[path = "harness/mod.rs"]
pub mod harness;
use kiln::data::{load_image_dir, pad_images, Augment, ChannelNorm, FolderOptions, ImageLayout};
use kiln::prelude::*;

#[derive(Parser, Clone, Debug)]
#[command(about = "Train the tutorial's SimpleCNN on an image folder")]
#[command(mut_arg("epochs", |a| a.default_value("10")))]
#[command(mut_arg("batch_size", |a| a.default_value("64")))]
pub struct Args {
    #[command(flatten)]
    pub common: harness::Common,
    #[command(flatten)]
    pub subset: harness::ImageSubset,
    /// IDX files, CIFAR-10 binary batches, or an ImageFolder tree.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/fashion-mnist"))]
    pub data: PathBuf,
    /// Random crops (padding 4 for 32×32 images) and horizontal flips.
    #[arg(long)]
    pub augment: bool,
    /// ImageFolder images are resized to SIZE×SIZE.
    #[arg(long, default_value_t = 32)]
    pub size: usize,
    /// ImageFolder images are read as 1 (grey) or 3 (RGB) channels.
    #[arg(long, default_value_t = 3)]
    pub channels: usize,
}

/// What a run reports.
#[derive(Debug)]
pub struct Outcome {
    pub test_accuracy: f32,
    pub test_loss: f32,
    pub epochs: usize,
    pub train_images: usize,
    pub test_images: usize,
    pub layout: ImageLayout,
    pub train_seconds: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let device = args.common.start()?;
    let out = run(&device, &args)?;
    println!(
        "{}",
        serde_json::json!({
            "test_accuracy": harness::num(out.test_accuracy),
            "test_loss": harness::num(out.test_loss),
            "epochs": out.epochs,
            "train_images": out.train_images,
            "test_images": out.test_images,
            "train_seconds": harness::seconds(out.train_seconds, 1),
            "device": device.name(),
        })
    );
    Ok(())
}

/// Loads `args.data`, trains SimpleCNN on it and evaluates it on the test images.
pub fn run(device: &Device, args: &Args) -> anyhow::Result<Outcome> {
    let run = &args.common;
    let folder = FolderOptions {
        size: [args.size, args.size],
        channels: args.channels,
        test_fraction: 0.2,
        seed: run.seed,
    };
    let mut sets = load_image_dir(&args.data, &folder)?;
    args.subset.apply(&mut sets.train, &mut sets.test)?;
    // MNIST-style 28×28 images are padded to the tutorial's 32×32.
    if sets.layout == ImageLayout::Idx && sets.train.sample_shape()[1..] == [28, 28] {
        sets.train = pad_images(&sets.train, 2)?;
        sets.test = pad_images(&sets.test, 2)?;
    }
    let norm = ChannelNorm::fit(&sets.train)?;
    norm.apply(&mut sets.train)?;
    norm.apply(&mut sets.test)?;
    let shape: Vec<usize> = sets.train.sample_shape().to_vec();
    let classes = match &sets.layout {
        ImageLayout::ImageFolder { classes } => classes.len(),
        _ => 10,
    };

    manual_seed(run.seed);
    let cnn = SimpleCnn::with_input(device, shape[0], [shape[1], shape[2]], classes)?;
    let mut model = Model::new(device, cnn, shape.clone());
    model.compile(
        Optimizer::adam_torch(run.lr),
        Loss::SparseCategoricalCrossEntropyFromLogits,
        &[Metric::SparseCategoricalAccuracy],
    )?;
    run.say(format!("device: {}", device.name()));
    run.say(format!(
        "data: {} ({:?}), {} training and {} test images of {shape:?}",
        args.data.display(),
        sets.layout,
        sets.train.len(),
        sets.test.len()
    ));
    run.say(model.summary()?);

    let mut fit = run.fit().validation_data(sets.test.clone());
    if args.augment {
        fit = fit.augment(Augment {
            pad: shape[1] / 8,
            hflip: true,
        });
    }
    let start = Instant::now();
    let history = model.fit(&sets.train, fit)?;
    let train_seconds = start.elapsed().as_secs_f64();
    run.write_outputs(&history)?;
    let test = model.evaluate(&sets.test, run.batch_size)?;
    let test_accuracy = test
        .metrics
        .iter()
        .find(|(n, _)| n == "accuracy")
        .map_or(f32::NAN, |(_, v)| *v);
    Ok(Outcome {
        test_accuracy,
        test_loss: test.loss,
        epochs: history.epochs.len(),
        train_images: sets.train.len(),
        test_images: sets.test.len(),
        layout: sets.layout,
        train_seconds,
    })
}
