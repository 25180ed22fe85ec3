//! PyTorch's `nn.Conv2d`: NCHW input, weight `[out, in, KH, KW]`, bias `[out]`.

use kiln_backend::Device;
use kiln_graph::{Param, Var, Window2d};

use crate::error::{ModelError, Result};
use crate::init::uniform;
use crate::module::{Module, Visitor};
use crate::rng::next_seed;

/// A size given as one number for both spatial axes or as `[height, width]`,
/// as PyTorch takes `3` or `(3, 5)`.
pub trait Size2d {
    fn pair(self) -> [usize; 2];
}

impl Size2d for usize {
    fn pair(self) -> [usize; 2] {
        [self, self]
    }
}

impl Size2d for [usize; 2] {
    fn pair(self) -> [usize; 2] {
        self
    }
}

/// The window settings the convolution and pooling layers share, as
/// builder methods (PyTorch's `stride=`, `padding=`, `dilation=`).
pub trait WindowOptions: Sized {
    fn window_mut(&mut self) -> &mut Window2d;

    fn stride(mut self, stride: impl Size2d) -> Self {
        let w = self.window_mut();
        *w = w.stride(stride.pair());
        self
    }

    /// Padding on both sides of each axis (zeros for a convolution; never
    /// the maximum, and counted or not in an average, for pooling).
    fn padding(mut self, padding: impl Size2d) -> Self {
        let w = self.window_mut();
        *w = w.padding(padding.pair());
        self
    }

    fn dilation(mut self, dilation: impl Size2d) -> Self {
        let w = self.window_mut();
        *w = w.dilation(dilation.pair());
        self
    }
}

/// A 2-D convolution with PyTorch's names (`weight`, `bias`) and
/// initialisation (both uniform in ±1/√(in·KH·KW), Kaiming-uniform with
/// a = √5), groups 1, zero padding.
///
/// ```no_run
/// # use kiln_models::{Conv2d, WindowOptions};
/// # let device = kiln_backend::Device::auto()?;
/// // nn.Conv2d(3, 32, kernel_size=3, padding=1)
/// let conv = Conv2d::new(&device, 3, 32, 3)?.padding(1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Conv2d {
    pub weight: Param,
    pub bias: Option<Param>,
    window: Window2d,
}

impl Conv2d {
    /// `in_channels → out_channels` with a `kernel_size` kernel, stride 1,
    /// no padding, a bias; initialised from the generator (see
    /// [`crate::manual_seed`]).
    pub fn new(
        device: &Device,
        in_channels: usize,
        out_channels: usize,
        kernel_size: impl Size2d,
    ) -> Result<Self> {
        Self::with_bias(device, in_channels, out_channels, kernel_size, true)
    }

    /// Like [`Conv2d::new`]; `bias` false leaves the bias out.
    pub fn with_bias(
        device: &Device,
        in_channels: usize,
        out_channels: usize,
        kernel_size: impl Size2d,
        bias: bool,
    ) -> Result<Self> {
        let kernel = kernel_size.pair();
        if in_channels == 0 || out_channels == 0 || kernel.contains(&0) {
            return Err(ModelError::Settings(format!(
                "Conv2d({in_channels} → {out_channels}, kernel {kernel:?}) needs channels and a kernel of at least 1"
            )));
        }
        let fan_in = in_channels * kernel[0] * kernel[1];
        let bound = 1.0 / (fan_in as f64).sqrt();
        let weight = Param::new(
            device,
            "weight",
            &uniform(out_channels * fan_in, bound, next_seed()),
            &[out_channels, in_channels, kernel[0], kernel[1]],
        )?;
        let bias = if bias {
            Some(Param::new(
                device,
                "bias",
                &uniform(out_channels, bound, next_seed()),
                &[out_channels],
            )?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            window: Window2d::new(kernel),
        })
    }

    pub fn window(&self) -> Window2d {
        self.window
    }

    pub fn in_channels(&self) -> usize {
        self.weight.shape()[1]
    }

    pub fn out_channels(&self) -> usize {
        self.weight.shape()[0]
    }
}

impl WindowOptions for Conv2d {
    fn window_mut(&mut self) -> &mut Window2d {
        &mut self.window
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Var) -> Result<Var> {
        let tape = x.tape();
        let y = x.conv2d(&tape.param(&self.weight), self.window)?;
        match &self.bias {
            Some(b) => {
                let b = tape.param(b).reshape(&[1, -1, 1, 1])?;
                Ok((&y + &b)?)
            }
            None => Ok(y),
        }
    }

    fn visit(&self, v: &mut dyn Visitor) {
        v.param("weight", &self.weight);
        if let Some(b) = &self.bias {
            v.param("bias", b);
        }
    }
}
