//! The transfer-learning example (the same code `cargo run --example
//! resnet_transfer` runs), small: it completes, trains the head on cached
//! features with epochs after the first at least ten times faster, learns
//! well above chance, and leaves the frozen backbone bit for bit as it was
//! built.

use clap::Parser;
use kiln::graph::Param;
use kiln::prelude::*;

#[path = "../examples/resnet_transfer.rs"]
#[allow(dead_code)]
mod resnet_transfer;

/// Well above the 0.1 of chance and the share of the commonest class
/// among 32 test images, which a head that predicts one class gets;
/// measured 0.5625 (18 of 32) after 30 epochs on a random backbone.
const MIN_ACCURACY: f32 = 0.4;

mod common;
use common::compare;

#[test]
fn cached_epochs_are_ten_times_faster_the_head_learns_and_the_backbone_is_untouched() {
    let device =
        Device::auto().expect("an adapter: apt-get install -y libvulkan1 mesa-vulkan-drivers");
    let args = resnet_transfer::Args::parse_from([
        "resnet_transfer",
        "--quiet",
        // Seed 0: the figures these bounds were set on.
        "--seed",
        "0",
        "--limit",
        "96",
        "--test-limit",
        "32",
        "--size",
        "32",
        "--epochs",
        "30",
    ]);
    let out = resnet_transfer::run(&device, &args).unwrap();
    // The backbone the example built from its seed, built again: fit must
    // have left every parameter and buffer of it exactly so.
    manual_seed(args.common.seed);
    let fresh = ResNet::resnet50(&device, 1000).unwrap();
    let want = fresh.features.state_dict();
    let got = out.model.module().features.state_dict();
    let names = |sd: &[(String, Param)]| sd.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&got), names(&want));
    for ((name, g), (_, w)) in got.iter().zip(&want) {
        compare::assert_bit_identical(name, &g.values().unwrap(), &w.values().unwrap());
    }
    assert_eq!(out.epoch_seconds.len(), 30);
    assert_eq!(out.classes, 10);
    let first = out.epoch_seconds[0];
    for &later in &out.epoch_seconds[1..] {
        assert!(later * 10.0 <= first, "epochs {:?}", out.epoch_seconds);
    }
    // Ten classes: chance is 0.1, and a head that does not train (or
    // trains on the wrong features) stays near it.
    assert!(
        out.test_accuracy >= MIN_ACCURACY,
        "test accuracy {}",
        out.test_accuracy
    );
}
