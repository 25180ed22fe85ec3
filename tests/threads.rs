//! Models across threads: `Model<M>`, `Sequential` and `Device` are `Send`
//! (checked when this file compiles), and two models trained at once on
//! one device, in two threads, end bit for bit where the same two end when
//! trained one after the other: the pipeline cache, the plan caches and the
//! buffer pool they share keep each model's work its own.

use kiln::data::Dataset;
use kiln::prelude::*;

mod common;
use common::compare::assert_bit_identical;

const _: () = {
    const fn send<T: Send>() {}
    send::<Device>();
    send::<Model<Sequential>>();
    send::<Model<SimpleCnn>>();
    send::<Sequential>();
};

/// Each model's weights after three epochs of Adam, dropout on.
fn train(mut m: Sequential, data: &Dataset) -> Vec<(String, Vec<f32>)> {
    m.fit(
        data,
        Fit::epochs(3).batch_size(32).verbosity(Verbosity::Silent),
    )
    .unwrap();
    m.weights().unwrap()
}

#[test]
fn two_models_trained_in_two_threads_equal_the_same_trained_in_turn() {
    let device = kiln::device_from_flag(None).expect("an adapter");
    let data = common::breast_cancer_train();
    let in_turn: Vec<_> = [5, 6]
        .map(|seed| train(common::tutorial_mlp(&device, seed), &data))
        .into();
    let models = [5, 6].map(|seed| common::tutorial_mlp(&device, seed));
    let at_once: Vec<_> = std::thread::scope(|scope| {
        let running: Vec<_> = models
            .into_iter()
            .map(|m| scope.spawn(|| train(m, &data)))
            .collect();
        running.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for (k, (a, b)) in in_turn.iter().zip(&at_once).enumerate() {
        assert_eq!(a.len(), b.len());
        for ((name, wa), (other, wb)) in a.iter().zip(b) {
            assert_eq!(name, other);
            assert_bit_identical(&format!("model {k}'s {name}, in threads"), wb, wa);
        }
    }
    // The two seeds train different models: the comparison is not of one
    // model with itself.
    assert_ne!(in_turn[0][0].1, in_turn[1][0].1);
}
