//! The image layers against direct loops, through `Model::predict` (the
//! path inference takes): PyTorch's defaults (pooling stride = kernel,
//! padding counted in averages), adaptive pooling, and Conv2d's names,
//! shapes and initialisation.

use kiln_backend::Device;
use kiln_models::*;

fn device() -> Device {
    Device::auto().expect("an adapter: apt-get install -y libvulkan1 mesa-vulkan-drivers")
}

fn predict<M: Module>(module: M, shape: [usize; 3], x: &[f32]) -> (Vec<usize>, Vec<f32>) {
    predict_on(&device(), module, shape, x)
}

fn predict_on<M: Module>(
    dev: &Device,
    module: M,
    shape: [usize; 3],
    x: &[f32],
) -> (Vec<usize>, Vec<f32>) {
    let mut m = Model::new(dev, module, shape.to_vec());
    let mut batch = vec![x.len() / shape.iter().product::<usize>()];
    batch.extend(shape);
    let out = m.predict(&(x, &batch[..]), 8).unwrap();
    (out.shape().to_vec(), out.into_data())
}

/// `[2, 3, 4, 6]` values with no ties.
fn images() -> Vec<f32> {
    (0..2 * 3 * 4 * 6)
        .map(|i| ((i * 37) % 101) as f32 / 10.0 - 5.0)
        .collect()
}

/// The mean of each `kh×kw` block (stride = kernel, no padding) of NCHW `x`.
fn block_means(x: &[f32], [n, c, h, w]: [usize; 4], [kh, kw]: [usize; 2]) -> Vec<f32> {
    let (oh, ow) = (h / kh, w / kw);
    let mut out = Vec::new();
    for p in 0..n * c {
        for y in 0..oh {
            for xx in 0..ow {
                let mut s = 0.0f64;
                for dy in 0..kh {
                    for dx in 0..kw {
                        s += x[p * h * w + (y * kh + dy) * w + xx * kw + dx] as f64;
                    }
                }
                out.push((s / (kh * kw) as f64) as f32);
            }
        }
    }
    out
}

fn close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
            "[{i}] got {g}, want {w}"
        );
    }
}

#[test]
fn adaptive_average_pooling() {
    let x = images();
    let (shape, y) = predict(AdaptiveAvgPool2d::new(1), [3, 4, 6], &x);
    assert_eq!(shape, vec![2, 3, 1, 1]);
    close(&y, &block_means(&x, [2, 3, 4, 6], [4, 6]));
    let (shape, y) = predict(AdaptiveAvgPool2d::new([2, 2]), [3, 4, 6], &x);
    assert_eq!(shape, vec![2, 3, 2, 2]);
    close(&y, &block_means(&x, [2, 3, 4, 6], [2, 3]));
    let dev = device();
    let mut m = Model::new(&dev, AdaptiveAvgPool2d::new([3, 4]), [3, 4, 6]);
    let e = m
        .predict(&(&x[..], &[2, 3, 4, 6][..]), 8)
        .unwrap_err()
        .to_string();
    assert!(e.contains("divide the input evenly"), "{e}");
}

#[test]
fn pooling_defaults_follow_pytorch() {
    let x = images();
    // MaxPool2d(2): stride 2, so [4, 6] → [2, 3], each the block's maximum.
    let (shape, y) = predict(MaxPool2d::new(2), [3, 4, 6], &x);
    assert_eq!(shape, vec![2, 3, 2, 3]);
    let mut want = Vec::new();
    for p in 0..6 {
        for oy in 0..2 {
            for ox in 0..3 {
                let m = (0..4)
                    .map(|t| x[p * 24 + (oy * 2 + t / 2) * 6 + ox * 2 + t % 2])
                    .fold(f32::NEG_INFINITY, f32::max);
                want.push(m);
            }
        }
    }
    close(&y, &want);
    // AvgPool2d(2, padding 1): padded taps count (PyTorch's default), so a
    // corner window holds one pixel over a divisor of 4; without, over 1.
    let pool = |include: bool| AvgPool2d::new(2).padding(1).count_include_pad(include);
    let (shape, with) = predict(pool(true), [3, 4, 6], &x);
    assert_eq!(shape, vec![2, 3, 3, 4]);
    let (_, without) = predict(pool(false), [3, 4, 6], &x);
    assert!((with[0] - x[0] / 4.0).abs() < 1e-6);
    assert!((without[0] - x[0]).abs() < 1e-6);
}

#[test]
fn conv2d_names_shapes_and_initialisation() {
    let dev = device();
    manual_seed(3);
    let conv = Conv2d::new(&dev, 3, 8, [3, 5])
        .unwrap()
        .padding([1, 2])
        .stride(2);
    let names: Vec<String> = conv.state_dict().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["weight", "bias"]);
    assert_eq!(conv.weight.shape(), &[8, 3, 3, 5]);
    let bound = 1.0 / (3.0f32 * 15.0).sqrt();
    for p in [&conv.weight, conv.bias.as_ref().unwrap()] {
        assert!(p.values().unwrap().iter().all(|v| v.abs() <= bound));
    }
    let no_bias = Conv2d::with_bias(&dev, 3, 8, 3, false).unwrap();
    assert_eq!(no_bias.num_parameters(), 8 * 3 * 9);
    // A 1×1 convolution is a per-pixel linear map plus the bias.
    let one = Conv2d::new(&dev, 3, 2, 1).unwrap();
    let (w, b) = (
        one.weight.values().unwrap(),
        one.bias.as_ref().unwrap().values().unwrap(),
    );
    let x = images();
    // Layers made on one device, run on another: an error, not a panic.
    let mut elsewhere = Model::new(&device(), Conv2d::new(&dev, 3, 2, 1).unwrap(), [3, 4, 6]);
    let e = elsewhere
        .predict(&(&x[..], &[2, 3, 4, 6][..]), 8)
        .unwrap_err()
        .to_string();
    assert!(e.contains("another device"), "{e}");
    let (shape, y) = predict_on(&dev, one, [3, 4, 6], &x);
    assert_eq!(shape, vec![2, 2, 4, 6]);
    let mut want = Vec::new();
    for n in 0..2 {
        for o in 0..2 {
            for p in 0..24 {
                let s: f32 = (0..3).map(|c| w[o * 3 + c] * x[(n * 3 + c) * 24 + p]).sum();
                want.push(s + b[o]);
            }
        }
    }
    close(&y, &want);
    assert!(Conv2d::new(&dev, 0, 8, 3).is_err());
}
