//! kiln's four bench steps in Burn 0.22.1 on its default wgpu adapter:
//! the same layers, batches and optimizer as `cargo bench --bench
//! train_step`, `cnn_step`, `lstm_step` and `resnet_step` (see README.md).
//! Prints, per step, the cold first step (the model built, its first step
//! finished; from the start of `main` for the first) and the warm median.

use std::time::Instant;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::{BinaryCrossEntropyLossConfig, CrossEntropyLossConfig, MseLoss, Reduction};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig};
use burn::nn::PaddingConfig2d;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times `step`: its first call (cold, from `start`), then `runs` runs of
/// `per_run` calls after two warm-ups, each run ended by a device sync.
fn time(device: &Device, start: Instant, runs: usize, per_run: usize, mut step: impl FnMut()) -> (f64, f64) {
    step();
    device.sync().expect("sync");
    let cold = start.elapsed().as_secs_f64();
    step();
    step();
    device.sync().expect("sync");
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        for _ in 0..per_run {
            step();
        }
        device.sync().expect("sync");
        times.push(t.elapsed().as_secs_f64() / per_run as f64);
    }
    (cold, median(times))
}

fn uniform<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Uniform(-1.0, 1.0), device)
}

fn classes(n: usize, k: usize, device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = (0..n).map(|i| (i % k) as i64).collect();
    Tensor::from_data(TensorData::new(v, [n]), device)
}

#[derive(Module, Debug)]
struct Mlp {
    fc1: Linear,
    bn1: BatchNorm,
    drop1: Dropout,
    fc2: Linear,
    bn2: BatchNorm,
    drop2: Dropout,
    out: Linear,
}

impl Mlp {
    fn new(device: &Device) -> Self {
        // Keras' BatchNormalization: momentum 0.99 (Burn keeps 1 − momentum), ε 1e-3.
        let bn = |n| BatchNormConfig::new(n).with_momentum(0.01).with_epsilon(1e-3).init(device);
        Self {
            fc1: LinearConfig::new(30, 128).init(device),
            bn1: bn(128),
            drop1: DropoutConfig::new(0.3).init(),
            fc2: LinearConfig::new(128, 64).init(device),
            bn2: bn(64),
            drop2: DropoutConfig::new(0.2).init(),
            out: LinearConfig::new(64, 1).init(device),
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = self.drop1.forward(self.bn1.forward(relu(self.fc1.forward(x))));
        let h = self.drop2.forward(self.bn2.forward(relu(self.fc2.forward(h))));
        sigmoid(self.out.forward(h))
    }
}

#[derive(Module, Debug)]
struct SimpleCnn {
    conv1: Conv2d,
    conv2: Conv2d,
    pool: MaxPool2d,
    fc1: Linear,
    drop: Dropout,
    fc2: Linear,
}

impl SimpleCnn {
    fn new(device: &Device) -> Self {
        let conv = |i, o| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        Self {
            conv1: conv(3, 32),
            conv2: conv(32, 64),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            fc1: LinearConfig::new(64 * 8 * 8, 512).init(device),
            drop: DropoutConfig::new(0.5).init(),
            fc2: LinearConfig::new(512, 10).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let h = self.pool.forward(relu(self.conv1.forward(x)));
        let h = self.pool.forward(relu(self.conv2.forward(h)));
        let h: Tensor<2> = h.flatten(1, 3);
        self.fc2.forward(self.drop.forward(relu(self.fc1.forward(h))))
    }
}

/// Keras' LSTM(units, activation='relu'): Burn's own LSTM has tanh only.
#[derive(Module, Debug)]
struct ReluLstm {
    kernel: Linear,
    recurrent: Linear,
}

impl ReluLstm {
    fn new(inputs: usize, units: usize, device: &Device) -> Self {
        Self {
            kernel: LinearConfig::new(inputs, 4 * units).init(device),
            recurrent: LinearConfig::new(units, 4 * units).with_bias(false).init(device),
        }
    }

    /// `[n, t, inputs]` → every step's hidden state `[n, t, units]`.
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [n, t, _] = x.dims();
        let projected = self.kernel.forward(x);
        let units = projected.dims()[2] / 4;
        let device = projected.device();
        let mut h: Tensor<2> = Tensor::zeros([n, units], &device);
        let mut c: Tensor<2> = Tensor::zeros([n, units], &device);
        let mut states = Vec::new();
        for s in 0..t {
            let step: Tensor<2> = projected.clone().narrow(1, s, 1).reshape([n, 4 * units]);
            let z = step + self.recurrent.forward(h.clone());
            let gates = z.chunk(4, 1);
            let (i, f, g, o) = (gates[0].clone(), gates[1].clone(), gates[2].clone(), gates[3].clone());
            c = sigmoid(f) * c + sigmoid(i) * relu(g);
            h = sigmoid(o) * relu(c.clone());
            states.push(h.clone());
        }
        Tensor::stack(states, 1)
    }
}

#[derive(Module, Debug)]
struct Forecaster {
    lstm1: ReluLstm,
    lstm2: ReluLstm,
    dense: Linear,
}

impl Forecaster {
    fn new(device: &Device) -> Self {
        Self {
            lstm1: ReluLstm::new(3, 50, device),
            lstm2: ReluLstm::new(50, 50, device),
            dense: LinearConfig::new(50, 1).init(device),
        }
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<2> {
        let seq = self.lstm2.forward(self.lstm1.forward(x));
        let [n, t, u] = seq.dims();
        let last: Tensor<2> = seq.narrow(1, t - 1, 1).reshape([n, u]);
        self.dense.forward(last)
    }
}

fn conv(i: usize, o: usize, k: usize, stride: usize, pad: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([i, o], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .init(device)
}

/// torchvision's Bottleneck: the stride on the 3×3, a 1×1 + BN downsample.
#[derive(Module, Debug)]
struct Bottleneck {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Conv2d,
    bn3: BatchNorm,
    down: Option<(Conv2d, BatchNorm)>,
}

impl Bottleneck {
    fn new(inplanes: usize, planes: usize, stride: usize, device: &Device) -> Self {
        let out = planes * 4;
        let bn = |n| BatchNormConfig::new(n).init(device);
        Self {
            conv1: conv(inplanes, planes, 1, 1, 0, device),
            bn1: bn(planes),
            conv2: conv(planes, planes, 3, stride, 1, device),
            bn2: bn(planes),
            conv3: conv(planes, out, 1, 1, 0, device),
            bn3: bn(out),
            down: (stride != 1 || inplanes != out)
                .then(|| (conv(inplanes, out, 1, stride, 0, device), bn(out))),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = relu(self.bn1.forward(self.conv1.forward(x.clone())));
        let h = relu(self.bn2.forward(self.conv2.forward(h)));
        let h = self.bn3.forward(self.conv3.forward(h));
        let skip = match &self.down {
            Some((c, b)) => b.forward(c.forward(x)),
            None => x,
        };
        relu(h + skip)
    }
}

#[derive(Module, Debug)]
struct Backbone {
    conv1: Conv2d,
    bn1: BatchNorm,
    pool: MaxPool2d,
    blocks: Vec<Bottleneck>,
    avg: AdaptiveAvgPool2d,
}

#[derive(Module, Debug)]
struct ResNet50 {
    features: Backbone,
    fc: Linear,
}

impl ResNet50 {
    fn new(device: &Device, frozen: bool) -> Self {
        let mut blocks = Vec::new();
        let mut inplanes = 64;
        for (planes, count, stride) in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)] {
            for k in 0..count {
                blocks.push(Bottleneck::new(inplanes, planes, if k == 0 { stride } else { 1 }, device));
                inplanes = planes * 4;
            }
        }
        let features = Backbone {
            conv1: conv(3, 64, 7, 2, 3, device),
            bn1: BatchNormConfig::new(64).init(device),
            pool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            blocks,
            avg: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
        };
        let features = if frozen { features.no_grad() } else { features };
        Self {
            features,
            fc: LinearConfig::new(2048, 10).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let f = &self.features;
        let mut h = f.pool.forward(relu(f.bn1.forward(f.conv1.forward(x))));
        for b in &f.blocks {
            h = b.forward(h);
        }
        let h: Tensor<2> = f.avg.forward(h).flatten(1, 3);
        self.fc.forward(h)
    }
}

fn main() {
    let start = Instant::now();
    let device = Device::default().autodiff();
    device.seed(1);
    println!("device: {device:?}");
    let report = |name: &str, (cold, warm): (f64, f64)| {
        println!("{name:<38} warm {:10.3} ms   cold {cold:7.2} s", warm * 1e3);
    };

    // The tutorial MLP, batch 64: Adam (Keras' ε), binary cross-entropy.
    let mut mlp = Mlp::new(&device);
    let mut opt = AdamConfig::new().with_epsilon(1e-7).init();
    let x = uniform([64, 30], &device);
    let y: Tensor<2, Int> = classes(64, 2, &device).reshape([64, 1]);
    let bce = BinaryCrossEntropyLossConfig::new().init(&device);
    report(
        "tutorial MLP, b64",
        time(&device, start, 7, 50, || {
            let loss = bce.forward(mlp.forward(x.clone()), y.clone());
            let grads = GradientsParams::from_grads(loss.backward(), &mlp);
            mlp = opt.step(1e-3, mlp.clone(), grads);
        }),
    );

    // SimpleCNN, batch 64 on 3×32×32: Adam, cross-entropy from logits.
    let t = Instant::now();
    let mut cnn = SimpleCnn::new(&device);
    let mut opt = AdamConfig::new().init();
    let x = uniform([64, 3, 32, 32], &device);
    let y = classes(64, 10, &device);
    let ce = CrossEntropyLossConfig::new().init(&device);
    report(
        "SimpleCNN, b64, 3x32x32",
        time(&device, t, 5, 5, || {
            let loss = ce.forward(cnn.forward(x.clone()), y.clone());
            let grads = GradientsParams::from_grads(loss.backward(), &cnn);
            cnn = opt.step(1e-3, cnn.clone(), grads);
        }),
    );

    // The LSTM forecaster, batch 32 × 10 × 3: Adam (Keras' ε), MSE.
    let t = Instant::now();
    let mut lstm = Forecaster::new(&device);
    let mut opt = AdamConfig::new().with_epsilon(1e-7).init();
    let x = uniform([32, 10, 3], &device);
    let y = uniform([32, 1], &device);
    let mse = MseLoss::new();
    report(
        "LSTM forecaster, b32x10x3",
        time(&device, t, 7, 20, || {
            let loss = mse.forward(lstm.forward(x.clone()), y.clone(), Reduction::Mean);
            let grads = GradientsParams::from_grads(loss.backward(), &lstm);
            lstm = opt.step(1e-3, lstm.clone(), grads);
        }),
    );

    // ResNet-50, batch 8 on 3×64×64, 10 classes: the head alone, then all.
    for (name, frozen) in [("ResNet-50 head only, b8, 64x64", true), ("ResNet-50 full fine-tune, b8, 64x64", false)] {
        let t = Instant::now();
        let mut net = ResNet50::new(&device, frozen);
        let mut opt = AdamConfig::new().init();
        let x = uniform([8, 3, 64, 64], &device);
        let y = classes(8, 10, &device);
        report(
            name,
            time(&device, t, 3, 2, || {
                let loss = ce.forward(net.forward(x.clone()), y.clone());
                let grads = GradientsParams::from_grads(loss.backward(), &net);
                net = opt.step(1e-3, net.clone(), grads);
            }),
        );
    }
}
