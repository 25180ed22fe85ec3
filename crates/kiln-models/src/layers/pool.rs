//! Pooling layers with PyTorch's defaults: `nn.MaxPool2d`, `nn.AvgPool2d`
//! (stride defaults to the kernel size) and `nn.AdaptiveAvgPool2d`.

use kiln_graph::{Var, Window2d};

use crate::error::{ModelError, Result};
use crate::layers::{Size2d, WindowOptions};
use crate::module::Module;

/// Max pooling over `[N, C, H, W]`.
///
/// ```
/// # use kiln_models::{MaxPool2d, WindowOptions};
/// let pool = MaxPool2d::new(2); // nn.MaxPool2d(2): 2×2 windows, stride 2
/// let stem_pool = MaxPool2d::new(3).stride(2).padding(1);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct MaxPool2d {
    window: Window2d,
    ceil_mode: bool,
}

impl MaxPool2d {
    pub fn new(kernel_size: impl Size2d) -> Self {
        let k = kernel_size.pair();
        Self {
            window: Window2d::new(k).stride(k),
            ceil_mode: false,
        }
    }

    /// Round the output size up (a last partial window is kept).
    pub fn ceil_mode(mut self, on: bool) -> Self {
        self.ceil_mode = on;
        self
    }
}

impl WindowOptions for MaxPool2d {
    fn window_mut(&mut self) -> &mut Window2d {
        &mut self.window
    }
}

impl Module for MaxPool2d {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(x.max_pool2d(self.window, self.ceil_mode)?)
    }
}

/// Average pooling over `[N, C, H, W]`; by default the padding counts in
/// each window's divisor, as in PyTorch.
#[derive(Clone, Copy, Debug)]
pub struct AvgPool2d {
    window: Window2d,
    ceil_mode: bool,
    count_include_pad: bool,
}

impl AvgPool2d {
    pub fn new(kernel_size: impl Size2d) -> Self {
        let k = kernel_size.pair();
        Self {
            window: Window2d::new(k).stride(k),
            ceil_mode: false,
            count_include_pad: true,
        }
    }

    pub fn ceil_mode(mut self, on: bool) -> Self {
        self.ceil_mode = on;
        self
    }

    /// Whether padded taps count in the divisor (PyTorch's default: true).
    pub fn count_include_pad(mut self, on: bool) -> Self {
        self.count_include_pad = on;
        self
    }
}

impl WindowOptions for AvgPool2d {
    fn window_mut(&mut self) -> &mut Window2d {
        &mut self.window
    }
}

impl Module for AvgPool2d {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(x.avg_pool2d(self.window, self.ceil_mode, self.count_include_pad)?)
    }
}

/// Average pooling to a fixed output size. `[1, 1]` (global average
/// pooling, ResNet's head) averages each plane; other sizes must divide the
/// input evenly, so that every window has the same size.
#[derive(Clone, Copy, Debug)]
pub struct AdaptiveAvgPool2d {
    output: [usize; 2],
}

impl AdaptiveAvgPool2d {
    pub fn new(output_size: impl Size2d) -> Self {
        Self {
            output: output_size.pair(),
        }
    }
}

impl Module for AdaptiveAvgPool2d {
    fn forward(&self, x: &Var) -> Result<Var> {
        let s = x.shape();
        if s.len() != 4 {
            return Err(ModelError::Shape(format!(
                "AdaptiveAvgPool2d takes [N, C, H, W]; got {s:?}"
            )));
        }
        if self.output == [1, 1] {
            return Ok(x.mean(&[2, 3], true)?);
        }
        let [oh, ow] = self.output;
        if oh == 0 || ow == 0 || !s[2].is_multiple_of(oh) || !s[3].is_multiple_of(ow) {
            return Err(ModelError::Shape(format!(
                "AdaptiveAvgPool2d to {:?} from {}×{}: kiln supports outputs that divide the input evenly",
                self.output, s[2], s[3]
            )));
        }
        let k = [s[2] / oh, s[3] / ow];
        Ok(x.avg_pool2d(Window2d::new(k).stride(k), false, true)?)
    }
}
