//! Every activation, as a layer, against its formula in f64: the forward
//! values, and through `unary` the same op the dense layers fuse.

use kiln_backend::Device;
use kiln_graph::{Mode, Plan, Tape};
use kiln_models::{Activation, Module};

/// An activation and its formula.
type Case = (Activation, fn(f64) -> f64);

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn each_activation_computes_its_formula() {
    let device =
        Device::auto().expect("an adapter: apt-get install -y libvulkan1 mesa-vulkan-drivers");
    let x: Vec<f32> = (0..24).map(|i| (i as f32 - 11.5) / 2.5).collect();
    let cases: &[Case] = &[
        (Activation::None, |x| x),
        (Activation::Relu, |x| x.max(0.0)),
        (Activation::Sigmoid, sigmoid),
        (Activation::Tanh, f64::tanh),
        (Activation::HardSigmoid, |x| (x / 6.0 + 0.5).clamp(0.0, 1.0)),
        (Activation::Silu, |x| x * sigmoid(x)),
    ];
    for &(activation, formula) in cases {
        let tape = Tape::new(Mode::Eval);
        let input = tape.input("x", &[4, 6]);
        let y = activation.forward(&input).unwrap();
        let by_op = input.unary(activation.unary().unwrap()).unwrap();
        let mut plan = Plan::compile(&device, &tape.graph(), &[y.id(), by_op.id()]).unwrap();
        let out = plan.run(&[("x", &x)]).unwrap();
        for (i, &v) in x.iter().enumerate() {
            let want = formula(v as f64);
            for got in [out[0][i], out[1][i]] {
                assert!(
                    (got as f64 - want).abs() <= 1e-6 * want.abs().max(1.0),
                    "{activation:?}({v}) = {got}, expected {want}"
                );
            }
        }
    }
}
