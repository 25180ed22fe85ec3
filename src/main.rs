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
    /// Run every op conformance case (FORMAT.md) under DIR.
    Conform {
        /// Folder of `*.safetensors` cases, searched recursively.
        dir: std::path::PathBuf,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Devices => devices(),
        Command::Conform { dir } => conform(&dir),
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
        println!("{a}");
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
