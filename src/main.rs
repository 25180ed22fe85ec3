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
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Devices => devices(),
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
