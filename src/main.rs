//! The `kiln` command line.

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "kiln",
    version,
    about = "Deep-learning training on any GPU through WGSL"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every adapter with the limits and features kiln uses.
    Devices,
    /// Run every op conformance case under DIR (the format: tests/conformance/FORMAT.md in the kiln repository).
    Conform {
        /// Folder of `*.safetensors` cases, searched recursively.
        dir: std::path::PathBuf,
    },
    /// Run a model in eval mode on the tensor `input` of a safetensors file
    /// and write its `logits`.
    Infer {
        /// resnet18, resnet34, resnet50, resnet101 or resnet152.
        #[arg(long)]
        model: String,
        /// Weights: a PyTorch `.pth` state dict or safetensors, torchvision names.
        #[arg(long)]
        weights: std::path::PathBuf,
        /// Classes of the head (default: fc.weight's rows in the weights).
        #[arg(long)]
        num_classes: Option<usize>,
        /// A safetensors file holding `input` [N, 3, H, W].
        #[arg(long)]
        input: std::path::PathBuf,
        /// Where to write `logits` [N, classes] (safetensors).
        #[arg(long)]
        output: std::path::PathBuf,
        #[arg(long, default_value_t = 16)]
        batch_size: usize,
        /// gpu, software, or part of an adapter's name.
        #[arg(long)]
        device: Option<String>,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Devices => devices(),
        Command::Conform { dir } => conform(&dir),
        Command::Infer {
            model,
            weights,
            num_classes,
            input,
            output,
            batch_size,
            device,
        } => {
            let device = kiln::device_from_flag(device.as_deref())?;
            kiln::infer::infer(
                &device,
                &model,
                &weights,
                num_classes,
                &input,
                &output,
                batch_size,
            )
        }
    }
}

fn devices() -> Result<()> {
    let adapters = kiln::backend::list_adapters();
    if adapters.is_empty() {
        anyhow::bail!(
            "no adapter found: install a Vulkan, Metal or DX12 driver \
             (Debian/Ubuntu: apt-get install -y libvulkan1 mesa-vulkan-drivers)"
        );
    }
    for a in adapters {
        let profile = kiln::backend::KernelProfile::resolve(&a, a.subgroups)?;
        println!("{a}\n  {profile}");
    }
    Ok(())
}

fn conform(dir: &std::path::Path) -> Result<()> {
    let device = kiln::Device::auto()?;
    let report = kiln::conform::run_dir(&device, dir)?;
    for (case, why) in &report.failed {
        println!("FAIL {case}: {why}");
    }
    for (case, why) in &report.skipped {
        println!("skip {case}: {why}");
    }
    println!("{}", report.summary());
    if !report.failed.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
