//! Transforms of image datasets (samples `[C, H, W]`): zero padding,
//! per-channel normalisation, and the seeded augmentations of training
//! batches (random crops of a padded image, horizontal flips).

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::rng::SplitMix64;

/// `[C, H, W]`, or an error naming what a transform needs.
fn chw(shape: &[usize], what: &str) -> Result<[usize; 3]> {
    match *shape {
        [c, h, w] => Ok([c, h, w]),
        _ => Err(DataError::Shape(format!(
            "{what} works on image samples [C, H, W]; these are {shape:?}"
        ))),
    }
}

/// The images of `data` with `pad` zero pixels added on every side (28×28
/// Fashion-MNIST to the 32×32 the tutorial's CNN takes, with `pad` 2).
pub fn pad_images(data: &Dataset, pad: usize) -> Result<Dataset> {
    let [c, h, w] = chw(data.sample_shape(), "pad_images")?;
    let (ph, pw) = (h + 2 * pad, w + 2 * pad);
    let mut out = vec![0.0; data.len() * c * ph * pw];
    for (src, dst) in data
        .features()
        .chunks_exact(h * w)
        .zip(out.chunks_exact_mut(ph * pw))
    {
        for y in 0..h {
            let row = (y + pad) * pw + pad;
            dst[row..row + w].copy_from_slice(&src[y * w..(y + 1) * w]);
        }
    }
    Dataset::with_shapes(
        out,
        &[c, ph, pw],
        data.targets().to_vec(),
        data.target_shape(),
    )
}

/// The images of `data` resized to `size` (height, width) by bilinear
/// interpolation (pixel centres aligned, as torchvision's `Resize` without
/// antialiasing).
pub fn resize_images(data: &Dataset, size: [usize; 2]) -> Result<Dataset> {
    let [c, h, w] = chw(data.sample_shape(), "resize_images")?;
    let [oh, ow] = size;
    if oh == 0 || ow == 0 {
        return Err(DataError::Settings(format!(
            "cannot resize images to {size:?}"
        )));
    }
    // Source coordinate and weights along one axis.
    let taps = |out: usize, input: usize| -> Vec<(usize, usize, f32)> {
        (0..out)
            .map(|o| {
                let s = ((o as f32 + 0.5) * input as f32 / out as f32 - 0.5).max(0.0);
                let lo = (s.floor() as usize).min(input - 1);
                let hi = (lo + 1).min(input - 1);
                (lo, hi, s - lo as f32)
            })
            .collect()
    };
    let (ys, xs) = (taps(oh, h), taps(ow, w));
    let mut out = Vec::with_capacity(data.len() * c * oh * ow);
    for plane in data.features().chunks_exact(h * w) {
        for &(y0, y1, fy) in &ys {
            for &(x0, x1, fx) in &xs {
                let at = |y: usize, x: usize| plane[y * w + x];
                let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
                let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
                out.push(top * (1.0 - fy) + bottom * fy);
            }
        }
    }
    Dataset::with_shapes(
        out,
        &[c, oh, ow],
        data.targets().to_vec(),
        data.target_shape(),
    )
}

/// Grey images as `channels` identical channels (a one-channel data set
/// for a model that takes RGB).
pub fn repeat_channels(data: &Dataset, channels: usize) -> Result<Dataset> {
    let [c, h, w] = chw(data.sample_shape(), "repeat_channels")?;
    if c != 1 || channels == 0 {
        return Err(DataError::Shape(format!(
            "repeat_channels makes {channels} channels of one; the images have {c}"
        )));
    }
    let out: Vec<f32> = data
        .features()
        .chunks_exact(h * w)
        .flat_map(|plane| (0..channels).flat_map(move |_| plane.iter().copied()))
        .collect();
    Dataset::with_shapes(
        out,
        &[channels, h, w],
        data.targets().to_vec(),
        data.target_shape(),
    )
}

/// Per-channel normalisation, `(x − mean[c]) / std[c]` (torchvision's
/// `Normalize`).
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelNorm {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl ChannelNorm {
    /// The mean and (population) standard deviation of each channel over
    /// every pixel of every image of `data`.
    pub fn fit(data: &Dataset) -> Result<Self> {
        let [c, h, w] = chw(data.sample_shape(), "ChannelNorm")?;
        let plane = h * w;
        let mut sum = vec![0.0f64; c];
        let mut sq = vec![0.0f64; c];
        for (i, &v) in data.features().iter().enumerate() {
            let ch = (i / plane) % c;
            sum[ch] += v as f64;
            sq[ch] += v as f64 * v as f64;
        }
        let n = (data.len() * plane).max(1) as f64;
        let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
        let std = sum
            .iter()
            .zip(&sq)
            .map(|(s, q)| ((q / n - (s / n).powi(2)).max(0.0).sqrt().max(1e-6)) as f32)
            .collect();
        Ok(Self { mean, std })
    }

    /// Normalises `data` in place.
    pub fn apply(&self, data: &mut Dataset) -> Result<()> {
        let [c, h, w] = chw(data.sample_shape(), "ChannelNorm")?;
        if self.mean.len() != c || self.std.len() != c {
            return Err(DataError::Shape(format!(
                "ChannelNorm for {} channels applied to images of {c}",
                self.mean.len()
            )));
        }
        let plane = h * w;
        for (i, v) in data.features_mut().iter_mut().enumerate() {
            let ch = (i / plane) % c;
            *v = (*v - self.mean[ch]) / self.std[ch];
        }
        Ok(())
    }
}

/// Seeded augmentation of training images: a random `crop` of the image
/// zero-padded by `pad` on every side (torchvision's `RandomCrop(size,
/// padding)` at the image's own size), then a horizontal flip with
/// probability ½ when `hflip`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Augment {
    pub pad: usize,
    pub hflip: bool,
}

impl Augment {
    /// Augments a batch of images of `shape` (`[C, H, W]`) in place, drawing
    /// from `rng`: the same seed gives the same batch.
    ///
    /// ```
    /// use kiln_data::{Augment, SplitMix64};
    /// let mut batch = vec![1.0; 2 * 3 * 4 * 4];
    /// Augment { pad: 1, hflip: true }.apply(&mut batch, &[3, 4, 4], &mut SplitMix64::new(7))?;
    /// # Ok::<(), kiln_data::DataError>(())
    /// ```
    pub fn apply(&self, batch: &mut [f32], shape: &[usize], rng: &mut SplitMix64) -> Result<()> {
        let [c, h, w] = chw(shape, "Augment")?;
        let size = c * h * w;
        if size == 0 || !batch.len().is_multiple_of(size) {
            return Err(DataError::Shape(format!(
                "a batch of {} values is not whole images of {shape:?}",
                batch.len()
            )));
        }
        let mut copy = vec![0.0; size];
        for image in batch.chunks_exact_mut(size) {
            let dy = rng.below(2 * self.pad + 1) as isize - self.pad as isize;
            let dx = rng.below(2 * self.pad + 1) as isize - self.pad as isize;
            let flip = self.hflip && rng.below(2) == 1;
            copy.copy_from_slice(image);
            for ch in 0..c {
                for y in 0..h {
                    for x in 0..w {
                        let sx = if flip { w - 1 - x } else { x } as isize + dx;
                        let sy = y as isize + dy;
                        let inside = sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w;
                        image[(ch * h + y) * w + x] = if inside {
                            copy[(ch * h + sy as usize) * w + sx as usize]
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
        Ok(())
    }
}
