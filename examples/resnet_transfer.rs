//! The tutorial's transfer learning: torchvision's ResNet-50 with every
//! weight frozen and `fc` replaced by `Linear(2048 → classes)`, only `fc`
//! trained. With the backbone in eval mode kiln computes its features once
//! per image and trains the head on them: the epochs after the first cost
//! only the head.
//!
//! By default: 1000 training and 500 test images of the Fashion-MNIST
//! subset in data/, made 3-channel at 64×64 so it runs on a software
//! adapter in minutes. `--weights` takes torchvision's `resnet50` weights
//! (`.pth` or safetensors); `--data DIR` any image folder kiln reads.
//!
//! `cargo run --release --example resnet_transfer -- --weights resnet50-11ad3fa6.pth`

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use clap::Parser;
#[path = "harness/mod.rs"]
pub mod harness;
use kiln::data::{
    load_image_dir, repeat_channels, resize_images, ChannelNorm, Dataset, FolderOptions,
    ImageLayout,
};
use kiln::models::{Callback, Control, EpochLogs, History, Trainable};
use kiln::prelude::*;

#[derive(Parser, Clone, Debug)]
#[command(about = "Transfer learning with a frozen ResNet-50 and a new head")]
#[command(mut_arg("epochs", |a| a.default_value("5")))]
#[command(mut_arg("limit", |a| a.default_value("1000")))]
#[command(mut_arg("test_limit", |a| a.default_value("500")))]
pub struct Args {
    #[command(flatten)]
    pub common: harness::Common,
    #[command(flatten)]
    pub subset: harness::ImageSubset,
    /// torchvision's resnet50 weights, `.pth` or safetensors (default: random).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// IDX files, CIFAR-10 binary batches, or an ImageFolder tree.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/fashion-mnist"))]
    pub data: PathBuf,
    /// Images are resized to SIZE×SIZE.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// eval: batch norm uses its running statistics and the features are
    /// cached; train: PyTorch's default, batch statistics and running
    /// statistics updated in the frozen layers, every epoch through the
    /// whole network.
    #[arg(long, default_value = "eval")]
    pub backbone: String,
}

/// What a run reports, and the model it trained.
pub struct Outcome {
    pub test_accuracy: f32,
    /// Seconds of each epoch, the first including the feature extraction.
    pub epoch_seconds: Vec<f64>,
    pub classes: usize,
    pub model: Model<ResNet>,
}

/// Seconds from the start of `fit` to each epoch's end.
struct EpochClock {
    start: Instant,
    ends: Rc<RefCell<Vec<f64>>>,
}

impl Callback for EpochClock {
    fn on_epoch_end(
        &mut self,
        _logs: &EpochLogs,
        _model: &mut dyn Trainable,
        _history: &mut History,
    ) -> kiln::models::Result<Control> {
        self.ends
            .borrow_mut()
            .push(self.start.elapsed().as_secs_f64());
        Ok(Control::Continue)
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let device = args.common.start()?;
    let out = run(&device, &args)?;
    let later: Vec<f64> = out.epoch_seconds.iter().skip(1).copied().collect();
    let median_later = if later.is_empty() {
        f64::NAN
    } else {
        let mut l = later.clone();
        l.sort_by(f64::total_cmp);
        l[l.len() / 2]
    };
    let first = out.epoch_seconds.first().copied().unwrap_or(f64::NAN);
    println!(
        "{}",
        serde_json::json!({
            "test_accuracy": harness::num(out.test_accuracy),
            "classes": out.classes,
            "epochs": out.epoch_seconds.len(),
            "first_epoch_seconds": (first * 100.0).round() / 100.0,
            "later_epoch_seconds": (median_later * 1000.0).round() / 1000.0,
            "speedup": (first / median_later * 10.0).round() / 10.0,
            "pretrained": args.weights.is_some(),
            "device": device.name(),
        })
    );
    Ok(())
}

/// Loads and prepares the images, builds the frozen ResNet-50 with a new
/// head, trains the head and evaluates it.
pub fn run(device: &Device, args: &Args) -> anyhow::Result<Outcome> {
    let run = &args.common;
    let folder = FolderOptions {
        size: [args.size, args.size],
        channels: 3,
        test_fraction: 0.2,
        seed: run.seed,
    };
    let mut sets = load_image_dir(&args.data, &folder)?;
    args.subset.apply(&mut sets.train, &mut sets.test)?;
    let classes = match &sets.layout {
        ImageLayout::ImageFolder { classes } => classes.len(),
        _ => 10,
    };
    // Grey images (IDX) become three identical channels; every image the
    // configured size; then ImageNet's normalisation, as torchvision's
    // weights expect.
    let prepare = |d: &Dataset| -> anyhow::Result<Dataset> {
        let mut d = d.clone();
        if d.sample_shape()[0] == 1 {
            d = repeat_channels(&d, 3)?;
        }
        if d.sample_shape()[1..] != [args.size, args.size] {
            d = resize_images(&d, [args.size, args.size])?;
        }
        ChannelNorm {
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
        }
        .apply(&mut d)?;
        Ok(d)
    };
    let train = prepare(&sets.train)?;
    let test = prepare(&sets.test)?;

    manual_seed(run.seed);
    let mut net = ResNet::resnet50(device, 1000)?;
    match &args.weights {
        Some(w) => net.load_weights(w, true)?,
        None => run.say(
            "notice: no --weights, so the backbone is random. torchvision's ImageNet weights: \
             https://download.pytorch.org/models/resnet50-11ad3fa6.pth (IMAGENET1K_V2) or \
             resnet50-0676ba61.pth (V1); kiln reads either file as it is.",
        ),
    }
    net.freeze();
    net.replace_fc(Linear::new(device, 2048, classes)?)?;
    match args.backbone.as_str() {
        "eval" => net.features.eval(),
        "train" => net.train(),
        other => anyhow::bail!("--backbone {other:?}: expected eval or train"),
    }
    let mut model = Model::new(device, net, [3, args.size, args.size]);
    model.compile(
        Optimizer::adam_torch(run.lr),
        Loss::SparseCategoricalCrossEntropyFromLogits,
        &[Metric::SparseCategoricalAccuracy],
    )?;
    run.say(format!("device: {}", device.name()));
    run.say(format!(
        "data: {} ({:?}): {} training and {} test images of {:?}",
        args.data.display(),
        sets.layout,
        train.len(),
        test.len(),
        train.sample_shape()
    ));
    run.say(model.summary()?);
    let ends = Rc::new(RefCell::new(Vec::new()));
    let clock = EpochClock {
        start: Instant::now(),
        ends: ends.clone(),
    };
    // A fifth of the training images held out: validation figures that are
    // not the test set's.
    let fit = run.fit().validation_split(0.2).callback(clock);
    let history = model.fit(&train, fit)?;
    run.write_outputs(&history)?;
    let ends = ends.borrow().clone();
    let epoch_seconds: Vec<f64> = ends
        .iter()
        .enumerate()
        .map(|(i, &e)| if i == 0 { e } else { e - ends[i - 1] })
        .collect();
    let shown: Vec<String> = epoch_seconds.iter().map(|s| format!("{s:.2}")).collect();
    run.say(format!("epoch seconds: {}", shown.join(", ")));
    model.module().eval();
    let logs = model.evaluate(&test, run.batch_size)?;
    let test_accuracy = logs
        .metrics
        .iter()
        .find(|(n, _)| n == "accuracy")
        .map_or(f32::NAN, |(_, v)| *v);
    Ok(Outcome {
        test_accuracy,
        epoch_seconds,
        classes,
        model,
    })
}
