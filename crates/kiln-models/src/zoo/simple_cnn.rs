//! The tutorial's SimpleCNN: two convolution blocks and two dense layers.

use kiln_backend::Device;
use kiln_graph::Var;

use crate::error::{ModelError, Result};
use crate::layers::{Conv2d, Dropout, Linear, MaxPool2d, WindowOptions};
use crate::module::{Module, Visitor};

/// `conv1` Conv2d(C→32, 3, padding 1) → ReLU → MaxPool2d(2) → `conv2`
/// Conv2d(32→64, 3, padding 1) → ReLU → MaxPool2d(2) → flatten → `fc1`
/// Linear(64·H/4·W/4 → 512) → ReLU → Dropout(0.5) → `fc2` Linear(512 →
/// classes), returning logits. PyTorch's names and initialisation, so a
/// `state_dict` of the tutorial's model loads as it is.
///
/// ```no_run
/// # use kiln_models::{SimpleCnn, ModuleExt};
/// # let device = kiln_backend::Device::auto()?;
/// let cnn = SimpleCnn::new(&device, 10)?; // 3×32×32 images, fc1 takes 64·8·8
/// assert_eq!(cnn.flatten_size(), 4096);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SimpleCnn {
    pub conv1: Conv2d,
    pub pool1: MaxPool2d,
    pub conv2: Conv2d,
    pub pool2: MaxPool2d,
    pub fc1: Linear,
    pub dropout: Dropout,
    pub fc2: Linear,
    input: [usize; 3],
}

impl SimpleCnn {
    /// The tutorial's model: RGB 32×32 images, `num_classes` outputs.
    pub fn new(device: &Device, num_classes: usize) -> Result<Self> {
        Self::with_input(device, 3, [32, 32], num_classes)
    }

    /// For `in_channels` images of `size` (height, width): the flatten size
    /// follows, 64·⌊H/4⌋·⌊W/4⌋.
    pub fn with_input(
        device: &Device,
        in_channels: usize,
        size: [usize; 2],
        num_classes: usize,
    ) -> Result<Self> {
        if size.iter().any(|&s| s < 4) {
            return Err(ModelError::Shape(format!(
                "SimpleCNN pools twice by 2: images of {size:?} are too small (at least 4×4)"
            )));
        }
        let flatten = 64 * (size[0] / 4) * (size[1] / 4);
        Ok(Self {
            conv1: Conv2d::new(device, in_channels, 32, 3)?.padding(1),
            pool1: MaxPool2d::new(2),
            conv2: Conv2d::new(device, 32, 64, 3)?.padding(1),
            pool2: MaxPool2d::new(2),
            fc1: Linear::new(device, flatten, 512)?,
            dropout: Dropout::new(0.5)?,
            fc2: Linear::new(device, 512, num_classes)?,
            input: [in_channels, size[0], size[1]],
        })
    }

    /// The shape of one input image, `[C, H, W]`.
    pub fn input_shape(&self) -> [usize; 3] {
        self.input
    }

    /// What `fc1` takes: 64 channels of the twice-pooled image.
    pub fn flatten_size(&self) -> usize {
        self.fc1.in_features()
    }
}

impl Module for SimpleCnn {
    fn forward(&self, x: &Var) -> Result<Var> {
        self.trace(x, &mut |_, _, _| {})
    }

    fn trace(&self, x: &Var, report: &mut dyn FnMut(&str, &dyn Module, &Var)) -> Result<Var> {
        let shape = x.shape();
        if shape.len() != 4 || shape[1..] != self.input {
            return Err(ModelError::Shape(format!(
                "SimpleCNN was built for [N, {}, {}, {}] images; got {shape:?}",
                self.input[0], self.input[1], self.input[2]
            )));
        }
        let mut step = |name: &str, m: &dyn Module, h: &Var| -> Result<Var> {
            let y = m.forward(h)?;
            report(name, m, &y);
            Ok(y)
        };
        let h = step("conv1", &self.conv1, x)?.relu()?;
        let h = step("pool1", &self.pool1, &h)?;
        let h = step("conv2", &self.conv2, &h)?.relu()?;
        let h = step("pool2", &self.pool2, &h)?;
        let h = step("fc1", &self.fc1, &h.flatten(1)?)?.relu()?;
        let h = step("dropout", &self.dropout, &h)?;
        step("fc2", &self.fc2, &h)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        v.module("conv1", &self.conv1);
        v.module("pool1", &self.pool1);
        v.module("conv2", &self.conv2);
        v.module("pool2", &self.pool2);
        v.module("fc1", &self.fc1);
        v.module("dropout", &self.dropout);
        v.module("fc2", &self.fc2);
    }
}
