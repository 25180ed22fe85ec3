//! The two kernel profiles on one adapter. Under the hardware strategy the
//! MLP's training step runs every product, the forward ones and the
//! backward ones alike, through the workgroup-tiled GEMM that GPUs get;
//! under the software strategy through none. The step has the same number
//! of kernels either way, and both train to the same weights.

use kiln::backend::KernelStrategy;
use kiln::prelude::*;

mod common;
use common::rel_norm;

const BATCH: usize = 32;

/// The tutorial's MLP without dropout (whose masks would not differ, but a
/// comparison of weights reads more plainly without them), with plain SGD
/// so that a step moves each weight by its gradient and nothing else.
fn mlp(device: &Device) -> Sequential {
    let mut m = tutorial_mlp(device, 30, 11, [0.0, 0.0]);
    m.compile(
        Optimizer::sgd(0.05),
        Loss::BinaryCrossEntropy,
        &[Metric::BinaryAccuracy],
    )
    .unwrap();
    m
}

fn tiled(labels: &[String]) -> usize {
    labels.iter().filter(|l| l.ends_with("/tiled")).count()
}

#[test]
fn the_hardware_profile_runs_every_mlp_product_tiled_and_trains_alike() {
    let base = kiln::device_from_flag(None).expect("an adapter");
    let software = base.with_kernel_strategy(KernelStrategy::Software);
    let hardware = base.with_kernel_strategy(KernelStrategy::Hardware);
    let (mut soft, mut hard) = (mlp(&software), mlp(&hardware));

    let labels = |m: &mut Sequential| -> Vec<String> {
        let kernels = m.train_kernels(BATCH).unwrap();
        kernels.into_iter().map(|(label, _)| label).collect()
    };
    let (soft_labels, hard_labels) = (labels(&mut soft), labels(&mut hard));
    // Three dense layers: three products forward, three weight gradients
    // and two input gradients backward (the first layer's input needs none).
    assert_eq!(tiled(&hard_labels), 8, "{hard_labels:#?}");
    assert_eq!(tiled(&soft_labels), 0, "{soft_labels:#?}");
    assert_eq!(
        soft_labels.len(),
        hard_labels.len(),
        "the profiles change kernel shapes, not how many kernels a step runs"
    );

    let data = common::breast_cancer_train();
    let fit = || {
        Fit::epochs(2)
            .batch_size(BATCH)
            .shuffle(Some(5))
            .verbosity(Verbosity::Silent)
    };
    let before = soft.weights().unwrap();
    assert_eq!(before, hard.weights().unwrap(), "same seed, same start");
    let soft_history = soft.fit(&data, fit()).unwrap();
    let hard_history = hard.fit(&data, fit()).unwrap();
    let (after_soft, after_hard) = (soft.weights().unwrap(), hard.weights().unwrap());
    assert_eq!(after_soft.len(), after_hard.len());
    for (((name, s), (_, h)), (_, b)) in after_soft.iter().zip(&after_hard).zip(&before) {
        assert_eq!(s.len(), h.len(), "{name}");
        // The weights moved, and moved alike: the profiles only sum in
        // another order.
        let moved = rel_norm(s, b);
        let apart = rel_norm(h, s);
        if name.starts_with("dense") && name.ends_with("weight") {
            assert!(moved > 1e-3, "{name} barely trained: {moved:e}");
        }
        assert!(apart < 1e-4, "{name}: the profiles differ by {apart:e}");
    }
    let (sl, hl) = (soft_history.series("loss"), hard_history.series("loss"));
    assert_eq!(sl.len(), hl.len());
    for (s, h) in sl.iter().zip(&hl) {
        assert!((s - h).abs() < 1e-4 * s.abs(), "losses {sl:?} vs {hl:?}");
    }
}
