//! Training steps queued ahead of the device: nothing in the step path
//! waits unless a value is read, the host stays at most the bound ahead,
//! and the result is the same as waiting after every step.

use kiln::prelude::*;

fn model(device: &Device) -> Sequential {
    let mut m = Sequential::new(device, [30])
        .seed(4)
        .dense(32, Activation::Relu)
        .batch_norm()
        .dropout(0.2)
        .dense(1, Activation::Sigmoid);
    m.compile(
        Optimizer::adam(1e-2),
        Loss::BinaryCrossEntropy,
        &[Metric::BinaryAccuracy],
    )
    .unwrap();
    m
}

fn batch(step: usize) -> (Vec<f32>, Vec<f32>) {
    let x = (0..64 * 30)
        .map(|i| (((i + 131 * step) * 2654435761) % 997) as f32 / 997.0 - 0.5)
        .collect::<Vec<_>>();
    let y = (0..64).map(|r| (x[r * 30] > 0.0) as u8 as f32).collect();
    (x, y)
}

#[test]
fn steps_run_ahead_of_the_device_and_end_where_waiting_steps_end() {
    let device = Device::auto().unwrap();
    let mut trained = Vec::new();
    for limit in [4, 1] {
        device.set_max_in_flight(limit);
        let mut m = model(&device);
        device.synchronize().unwrap();
        for step in 0..12 {
            let (x, y) = batch(step);
            m.train_on_batch(&x, &y).unwrap();
            assert!(
                device.queued_submissions() <= limit,
                "{} submissions queued, the bound is {limit}",
                device.queued_submissions()
            );
        }
        assert_eq!(
            device.queued_submissions(),
            limit,
            "no step waited for the device beyond the bound"
        );
        trained.push(m.weights().unwrap());
        assert_eq!(
            device.queued_submissions(),
            0,
            "reading weights waits for all"
        );
    }
    device.set_max_in_flight(kiln::backend::default_max_in_flight(device.summary().kind));
    assert_eq!(
        trained[0], trained[1],
        "queued and waited steps agree exactly"
    );
}
