//! Runs every op conformance case in tests/conformance/ (copied from the ONNX
//! backend node tests and from PyTorch; see its README.md) and fails on any
//! failure. Skips are features still missing: they are printed, with reasons.

#[test]
fn every_conformance_case_passes_or_is_a_named_skip() {
    let device = kiln::Device::auto()
        .expect("an adapter: apt-get install -y libvulkan1 mesa-vulkan-drivers");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let report = kiln::conform::run_dir(&device, &dir).expect("the cases load");
    for (case, why) in &report.skipped {
        println!("skip {case}: {why}");
    }
    for (case, why) in &report.failed {
        println!("FAIL {case}: {why}");
    }
    println!("{}", report.summary());
    assert!(
        report.failed.is_empty(),
        "{}; failures above",
        report.summary()
    );
    assert!(
        report.passed >= 94,
        "expected at least the 94 cases of the implemented ops to pass: {}",
        report.summary()
    );
}
