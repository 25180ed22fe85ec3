//! The transfer-learning example (the same code `cargo run --example
//! resnet_transfer` runs), small: it completes, trains the head on cached
//! features with epochs after the first at least ten times faster, and
//! keeps the frozen backbone untouched.

use clap::Parser;
use kiln::prelude::*;

#[path = "../examples/resnet_transfer.rs"]
#[allow(dead_code)]
mod resnet_transfer;

#[test]
fn cached_epochs_are_ten_times_faster_than_the_first() {
    let device =
        Device::auto().expect("an adapter: apt-get install -y libvulkan1 mesa-vulkan-drivers");
    let args = resnet_transfer::Args::parse_from([
        "resnet_transfer",
        "--quiet",
        "--images",
        "96",
        "--test-images",
        "32",
        "--size",
        "32",
        "--epochs",
        "3",
    ]);
    let out = resnet_transfer::run(&device, &args).unwrap();
    assert_eq!(out.epoch_seconds.len(), 3);
    assert_eq!(out.classes, 10);
    let first = out.epoch_seconds[0];
    for &later in &out.epoch_seconds[1..] {
        assert!(later * 10.0 <= first, "epochs {:?}", out.epoch_seconds);
    }
    assert!((0.0..=1.0).contains(&out.test_accuracy));
}
