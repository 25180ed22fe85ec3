//! The generated 2-D convolution kernels, NCHW with weights `[Cout, Cin, KH,
//! KW]` (PyTorch's layouts), structured as implicit GEMMs: no im2col buffer
//! is ever written; each invocation gathers the elements of its 8×8 block's
//! rows and columns straight from the tensors, K walked as nested loops so
//! no index is divided inside them. Where rows hold a multiple of 8
//! pixels (forward; stride-1 input gradient), an invocation's 8 columns
//! are neighbours in one row: it reads each distinct element of their
//! overlapping taps once per (channel, kernel row), and the kw loop
//! unrolls over those registers (on lavapipe every divergent load is a
//! loop over lanes, so loads, not multiply-adds, set the pace). The weight
//! gradient of a 3- or 4-wide kernel does the same along its K axis: a
//! lane's columns are two (channel, kernel row) pairs of four tap slots,
//! and four output pixels of a row share one window of each pair.
//!
//! | pass | rows (M) | columns (N) | K | batch |
//! |---|---|---|---|---|
//! | forward `y = conv(x, w)` | Cout | OH·OW | Cin·KH·KW | image |
//! | input gradient `dx` | Cin | H·W | Cout·KH·KW | image |
//! | weight gradient `dw` | Cout | Cin·KH·KW | images·OH·OW | group of images |
//!
//! The input gradient gathers (for each input pixel, the output pixels
//! whose windows cover it) rather than scatters, since WGSL has no portable
//! float atomics. The weight gradient's K runs over every image and pixel;
//! with few outputs it is split over groups of images into partial sums
//! that the caller adds up. Every pass takes an epilogue program like a
//! matrix product's. Pointwise convolutions (1×1, stride 1, no padding)
//! of feature maps of 64 pixels or more run as the matrix products they
//! are; the forward and input-gradient passes put the pixels of all images
//! side by side as their columns, so small late-stage maps fill blocks.

use crate::error::{invalid, BackendError, Result};
use crate::layout::StridedLayout;
use crate::{Buffer, KernelProfile, MatmulVariant};

use super::description::{Epilogue, Render, Rendered};
use super::gemm::{GemmKernel, GemmLoad, GemmSpec};
use super::{check_fits, Operand, Store};

mod block;
mod taps;
use block::generate;

/// Which of a convolution's three products a kernel computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConvPass {
    /// `y[n, co, oh, ow] = Σ w[co, ci, kh, kw]·x[n, ci, oh·s − p + kh·d, …]`.
    Forward,
    /// `dx` from `dy` and `w`.
    InputGrad,
    /// `dw` from `dy` and `x`.
    WeightGrad,
}

/// The geometry of a 2-D convolution (groups 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dGeometry {
    /// Images.
    pub batch: usize,
    /// Channels of each input image (Cin).
    pub in_channels: usize,
    /// Channels of each output image (Cout).
    pub out_channels: usize,
    /// Input height and width.
    pub input: [usize; 2],
    /// Kernel height and width (KH, KW).
    pub kernel: [usize; 2],
    /// How far apart output pixels' windows start, down and across.
    pub stride: [usize; 2],
    /// Implicit zero padding: top, left, bottom, right.
    pub pad: [usize; 4],
    /// How far apart a kernel's taps are.
    pub dilation: [usize; 2],
}

impl Conv2dGeometry {
    /// Output height and width, or `None` when the (dilated) kernel does not
    /// fit the padded input.
    pub fn output(&self) -> Option<[usize; 2]> {
        let size = |axis: usize| -> Option<usize> {
            let padded = self.input[axis] + self.pad[axis] + self.pad[axis + 2];
            let span = self.dilation[axis] * (self.kernel[axis].checked_sub(1)?) + 1;
            if self.stride[axis] == 0 || span > padded {
                return None;
            }
            Some((padded - span) / self.stride[axis] + 1)
        };
        Some([size(0)?, size(1)?])
    }

    /// (rows, columns, K) of `pass`'s product.
    fn gemm(&self, pass: ConvPass) -> [usize; 3] {
        let [oh, ow] = self.output().unwrap_or([0, 0]);
        let [h, w] = self.input;
        let khw = self.kernel[0] * self.kernel[1];
        match pass {
            ConvPass::Forward => [self.out_channels, oh * ow, self.in_channels * khw],
            ConvPass::InputGrad => [self.in_channels, h * w, self.out_channels * khw],
            ConvPass::WeightGrad => [
                self.out_channels,
                self.in_channels * khw,
                self.batch * oh * ow,
            ],
        }
    }

    /// The shape of `pass`'s result.
    pub fn result_shape(&self, pass: ConvPass) -> Vec<usize> {
        let [oh, ow] = self.output().unwrap_or([0, 0]);
        match pass {
            ConvPass::Forward => vec![self.batch, self.out_channels, oh, ow],
            ConvPass::InputGrad => vec![self.batch, self.in_channels, self.input[0], self.input[1]],
            ConvPass::WeightGrad => vec![
                self.out_channels,
                self.in_channels,
                self.kernel[0],
                self.kernel[1],
            ],
        }
    }

    /// Groups of images the weight gradient is split over: enough 8×8
    /// blocks of outputs to fill a GPU, each group summing a share of the
    /// images (1 when the outputs alone suffice), and groups small enough
    /// that one invocation's loops stay within [`super::MAX_LOOP_TRIPS`].
    /// Fixed by the geometry, not the device, so that a graph is the same
    /// everywhere.
    pub fn weight_grad_splits(&self) -> usize {
        const BLOCKS: usize = 8192;
        let [m, n, _] = self.gemm(ConvPass::WeightGrad);
        let blocks = m.div_ceil(8) * n.div_ceil(8);
        let batch = self.batch.max(1);
        let for_blocks = BLOCKS.div_ceil(blocks.max(1));
        let per_image = self.loop_trips(ConvPass::WeightGrad, 1);
        let most_images = (super::MAX_LOOP_TRIPS / per_image.max(1)).max(1);
        for_blocks.max(batch.div_ceil(most_images)).clamp(1, batch)
    }

    /// Loop iterations of one invocation of `pass` (`splits` groups of
    /// images for the weight gradient): the nested K loops' back-edges.
    fn loop_trips(&self, pass: ConvPass, splits: usize) -> usize {
        let [oh, ow] = self.output().unwrap_or([0, 0]);
        let [kh, kw] = self.kernel;
        match pass {
            ConvPass::Forward => self.in_channels * (1 + kh * (1 + kw)),
            ConvPass::InputGrad => self.out_channels * (1 + kh * (1 + kw)),
            ConvPass::WeightGrad => self.batch.div_ceil(splits.max(1)) * (1 + oh * (1 + ow)),
        }
    }
}

/// A convolution pass: its geometry and the two tensors it reads (`x` and
/// `w` forward, `dy` and `w` for the input gradient, `dy` and `x` for the
/// weight gradient). A weight gradient with `splits` > 1 writes partial sums
/// over `[splits, Cout, Cin, KH, KW]` for the caller to add.
#[derive(Clone, Debug)]
pub struct ConvSpec {
    pub pass: ConvPass,
    pub geometry: Conv2dGeometry,
    pub a: Buffer,
    pub b: Buffer,
    pub splits: usize,
}

impl ConvSpec {
    /// The epilogue's iteration space and how many of its leading axes the
    /// batch index walks.
    pub fn space(&self) -> (Vec<usize>, usize) {
        let g = &self.geometry;
        match (self.pass, self.splits) {
            (ConvPass::WeightGrad, s) if s > 1 => {
                let mut space = vec![s];
                space.extend(g.result_shape(ConvPass::WeightGrad));
                (space, 1)
            }
            (ConvPass::WeightGrad, _) => (g.result_shape(ConvPass::WeightGrad), 0),
            (pass, _) => (g.result_shape(pass), 1),
        }
    }
}

/// A convolution kernel: the pass of `spec` with `epilogue` applied to
/// each of its elements (see the module docs).
#[derive(Clone, Debug)]
pub struct ConvKernel {
    pub label: String,
    pub spec: ConvSpec,
    pub epilogue: Epilogue,
}

impl Render for ConvKernel {
    fn render(&self, profile: &KernelProfile) -> Result<Rendered<'_>> {
        if let Some(gemm) = as_gemm(self) {
            return Ok(Rendered::Generated(gemm.generated(profile)?));
        }
        Ok(Rendered::Generated(generate(profile, self)?))
    }
}

/// A 1×1 convolution with stride 1 and no padding is a matrix product per
/// image, `W·X[n]` (or `Wᵀ·dY[n]` for its input gradient), which the GEMM
/// kernel runs faster than the gathering one: the product, and the
/// epilogue's layouts over `[N, C, H·W]`, when `conv` is one whose layouts
/// allow it.
fn as_gemm(conv: &ConvKernel) -> Option<GemmKernel> {
    let (spec, epilogue) = (&conv.spec, &conv.epilogue);
    let g = &spec.geometry;
    let pointwise = g.kernel == [1, 1] && g.stride == [1, 1] && g.pad == [0; 4];
    let hw = g.input[0] * g.input[1];
    // Per image, the product is HW columns wide: a feature map smaller
    // than a block of the GEMM kernel is better served by the gathering
    // kernel, which puts the images side by side.
    if !pointwise || spec.pass == ConvPass::WeightGrad || spec.splits != 1 || hw < MIN_GEMM_PIXELS {
        return None;
    }
    let (rows, inner) = match spec.pass {
        ConvPass::Forward => (g.out_channels, g.in_channels),
        _ => (g.in_channels, g.out_channels),
    };
    // Over [N, C, H, W] → over [N, C, H·W], when H and W are walked as one.
    let merge = |l: &StridedLayout| -> Option<StridedLayout> {
        let s = &l.strides;
        (s.len() == 4 && (s[2] == s[3] * g.input[1] || g.input[0] == 1)).then(|| StridedLayout {
            shape: vec![g.batch, rows, hw],
            strides: vec![s[0], s[1], s[3]],
            offset: l.offset,
        })
    };
    let operands: Vec<Operand> = epilogue
        .operands
        .iter()
        .map(|o| {
            Some(Operand {
                buffer: o.buffer.clone(),
                layout: merge(&o.layout)?,
            })
        })
        .collect::<Option<_>>()?;
    let stores: Vec<Store> = epilogue
        .stores
        .iter()
        .map(|st| {
            Some(Store {
                expr: st.expr,
                buffer: st.buffer.clone(),
                layout: merge(&st.layout)?,
            })
        })
        .collect::<Option<_>>()?;
    let gemm = GemmSpec {
        m: rows,
        n: hw,
        k: inner,
        shape: vec![g.batch, rows, hw],
        // W is [Cout, Cin]: read as is forward, transposed for the input gradient.
        a: GemmLoad {
            buffer: spec.b.clone(),
            offset: 0,
            row_stride: g.in_channels,
            batch_stride: 0,
            transposed: spec.pass == ConvPass::InputGrad,
        },
        b: GemmLoad {
            buffer: spec.a.clone(),
            offset: 0,
            row_stride: hw,
            batch_stride: inner * hw,
            transposed: false,
        },
        variant: MatmulVariant::Auto,
    };
    Some(GemmKernel {
        label: conv.label.clone(),
        spec: gemm,
        epilogue: Epilogue {
            program: epilogue.program.clone(),
            operands,
            stores,
        },
    })
}

/// Pointwise convolutions of feature maps at least this large run as GEMMs.
const MIN_GEMM_PIXELS: usize = 64;

/// Errors for a pass that cannot run: a kernel that does not fit its
/// padded input, an empty product, splits of a pass other than the weight
/// gradient, too many loop trips for a software adapter, an epilogue or
/// operand that does not fit its buffer. The output's height and width
/// otherwise.
fn check_spec(profile: &KernelProfile, kernel: &ConvKernel) -> Result<[usize; 2]> {
    let (label, spec, e) = (kernel.label.as_str(), &kernel.spec, &kernel.epilogue);
    let (program, operands, stores) = (&e.program, &e.operands[..], &e.stores[..]);
    let g = spec.geometry;
    let Some([oh, ow]) = g.output() else {
        return Err(invalid(
            label,
            format!(
                "a {:?} kernel (dilation {:?}) does not fit a {:?} input padded by {:?}",
                g.kernel, g.dilation, g.input, g.pad
            ),
        ));
    };
    let [m, n, k] = g.gemm(spec.pass);
    let splits = spec.splits.max(1);
    if m == 0
        || n == 0
        || k == 0
        || g.batch == 0
        || g.stride.contains(&0)
        || g.dilation.contains(&0)
    {
        return Err(BackendError::Empty {
            op: label.to_string(),
            shape: vec![m, n, k],
        });
    }
    if spec.pass != ConvPass::WeightGrad && splits != 1 {
        return Err(invalid(label, "only the weight gradient is split"));
    }
    profile.check_loop_trips(
        label,
        g.loop_trips(spec.pass, splits),
        &format!("a {:?} pass of {g:?} in {splits} groups", spec.pass),
    )?;
    let (space, _) = spec.space();
    let results: Vec<usize> = stores.iter().map(|s| s.expr).collect();
    program.validate(operands.len(), true, &results)?;
    for o in operands {
        check_fits(label, &space, &o.buffer, &o.layout)?;
    }
    for s in stores {
        check_fits(label, &space, &s.buffer, &s.layout)?;
    }
    let [h, w] = g.input;
    let x_len = g.batch * g.in_channels * h * w;
    let w_len = g.out_channels * g.in_channels * g.kernel[0] * g.kernel[1];
    let dy_len = g.batch * g.out_channels * oh * ow;
    let (a_len, b_len) = match spec.pass {
        ConvPass::Forward => (x_len, w_len),
        ConvPass::InputGrad => (dy_len, w_len),
        ConvPass::WeightGrad => (dy_len, x_len),
    };
    for (name, buf, len) in [("first", &spec.a, a_len), ("second", &spec.b, b_len)] {
        if (len as u64) * 4 > buf.size() {
            return Err(invalid(
                label,
                format!(
                    "the {name} operand needs {len} values; its buffer holds {}",
                    buf.size() / 4
                ),
            ));
        }
    }
    Ok([oh, ow])
}
