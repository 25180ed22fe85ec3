//! ResNets as torchvision builds them (v1.5: the stride of a bottleneck
//! sits on its 3×3 convolution), with torchvision's `state_dict` names,
//! so its weights load as they are: `conv1`, `bn1`, `layer1.0.conv1`,
//! `layer2.0.downsample.0`, `layer2.0.downsample.1`, …, `fc`.

use kiln_backend::Device;
use kiln_graph::Var;

use crate::error::{ModelError, Result};
use crate::init::normal;
use crate::layers::{
    AdaptiveAvgPool2d, BatchNorm, Conv2d, Linear, MaxPool2d, Stack, WindowOptions,
};
use crate::module::{Module, Visitor};
use crate::rng::next_seed;

/// Which residual block a ResNet stacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    /// Two 3×3 convolutions (ResNet-18, -34).
    Basic,
    /// 1×1 → 3×3 → 1×1, four times wider out than in (ResNet-50 and up).
    Bottleneck,
}

impl Block {
    fn expansion(self) -> usize {
        match self {
            Block::Basic => 1,
            Block::Bottleneck => 4,
        }
    }
}

/// A convolution with torchvision's ResNet initialisation (Kaiming-normal,
/// fan-out, for relu) and no bias.
fn conv(device: &Device, cin: usize, cout: usize, k: usize, stride: usize) -> Result<Conv2d> {
    let c = Conv2d::with_bias(device, cin, cout, k, false)?
        .stride(stride)
        .padding(k / 2);
    let fan_out = cout * k * k;
    let std = (2.0 / fan_out as f64).sqrt();
    c.weight
        .write(&normal(c.weight.numel(), std, next_seed()))?;
    Ok(c)
}

/// One residual block: its convolutions and batch norms, and a projection
/// of the input where the shape changes.
pub struct Residual {
    kind: Block,
    convs: Vec<Conv2d>,
    norms: Vec<BatchNorm>,
    /// `downsample.0` (1×1 convolution) and `downsample.1` (batch norm).
    pub downsample: Option<Stack>,
}

impl Residual {
    fn new(
        device: &Device,
        kind: Block,
        inplanes: usize,
        planes: usize,
        stride: usize,
    ) -> Result<Self> {
        let out = planes * kind.expansion();
        let (convs, widths) = match kind {
            Block::Basic => (
                vec![
                    conv(device, inplanes, planes, 3, stride)?,
                    conv(device, planes, planes, 3, 1)?,
                ],
                vec![planes, planes],
            ),
            Block::Bottleneck => (
                vec![
                    conv(device, inplanes, planes, 1, 1)?,
                    conv(device, planes, planes, 3, stride)?,
                    conv(device, planes, out, 1, 1)?,
                ],
                vec![planes, planes, out],
            ),
        };
        let norms = widths
            .iter()
            .map(|&w| BatchNorm::pytorch(device, w))
            .collect::<Result<Vec<_>>>()?;
        let downsample = if stride != 1 || inplanes != out {
            let mut s = Stack::new();
            s.push("0", Box::new(conv(device, inplanes, out, 1, stride)?))?;
            s.push("1", Box::new(BatchNorm::pytorch(device, out)?))?;
            Some(s)
        } else {
            None
        };
        Ok(Self {
            kind,
            convs,
            norms,
            downsample,
        })
    }
}

impl Module for Residual {
    fn forward(&self, x: &Var) -> Result<Var> {
        let mut h = x.clone();
        let last = self.convs.len() - 1;
        for (i, (c, n)) in self.convs.iter().zip(&self.norms).enumerate() {
            h = n.forward(&c.forward(&h)?)?;
            if i < last {
                h = h.relu()?;
            }
        }
        let identity = match &self.downsample {
            Some(d) => d.forward(x)?,
            None => x.clone(),
        };
        Ok((&h + &identity)?.relu()?)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        for (i, (c, n)) in self.convs.iter().zip(&self.norms).enumerate() {
            v.module(&format!("conv{}", i + 1), c);
            v.module(&format!("bn{}", i + 1), n);
        }
        if let Some(d) = &self.downsample {
            v.module("downsample", d);
        }
    }

    fn kind(&self) -> String {
        format!("{:?}", self.kind)
    }
}

/// A ResNet's feature extractor: the stem (7×7/2 convolution, batch norm,
/// relu, 3×3/2 max pooling), four stages of residual blocks and global
/// average pooling; `[N, 3, H, W]` → `[N, 512·expansion]`.
pub struct ResNetFeatures {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub maxpool: MaxPool2d,
    /// `layer1` … `layer4`, each a stack of blocks named `0`, `1`, ….
    pub layers: [Stack; 4],
    pub avgpool: AdaptiveAvgPool2d,
}

impl Module for ResNetFeatures {
    fn forward(&self, x: &Var) -> Result<Var> {
        self.trace(x, &mut |_, _, _| {})
    }

    fn trace(&self, x: &Var, report: &mut dyn FnMut(&str, &dyn Module, &Var)) -> Result<Var> {
        let s = x.shape();
        if s.len() != 4 || s[1] != 3 {
            return Err(ModelError::Shape(format!(
                "a ResNet takes RGB images [N, 3, H, W]; got {s:?}"
            )));
        }
        let mut step = |name: &str, m: &dyn Module, h: &Var| -> Result<Var> {
            let y = m.forward(h)?;
            report(name, m, &y);
            Ok(y)
        };
        let h = step("conv1", &self.conv1, x)?;
        let h = step("bn1", &self.bn1, &h)?.relu()?;
        let mut h = step("maxpool", &self.maxpool, &h)?;
        for (i, stage) in self.layers.iter().enumerate() {
            h = step(&format!("layer{}", i + 1), stage, &h)?;
        }
        let h = step("avgpool", &self.avgpool, &h)?;
        Ok(h.flatten(1)?)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        v.module("conv1", &self.conv1);
        v.module("bn1", &self.bn1);
        v.module("maxpool", &self.maxpool);
        for (i, stage) in self.layers.iter().enumerate() {
            v.module(&format!("layer{}", i + 1), stage);
        }
        v.module("avgpool", &self.avgpool);
    }
}

/// A ResNet: [`ResNetFeatures`] and the `fc` classifier, named as
/// torchvision's `state_dict` names them (the features' children at the
/// top level).
///
/// ```no_run
/// # use kiln_models::{ResNet, ModuleExt};
/// # let device = kiln_backend::Device::auto()?;
/// let net = ResNet::resnet50(&device, 1000)?;
/// assert_eq!(net.num_parameters(), 25_557_032);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ResNet {
    pub features: ResNetFeatures,
    pub fc: Linear,
}

impl ResNet {
    /// A ResNet of `kind` blocks, `blocks[i]` of them in stage `i`.
    pub fn new(
        device: &Device,
        kind: Block,
        blocks: [usize; 4],
        num_classes: usize,
    ) -> Result<Self> {
        if blocks.contains(&0) || num_classes == 0 {
            return Err(ModelError::Settings(format!(
                "a ResNet needs blocks in every stage and a class ({blocks:?}, {num_classes} classes)"
            )));
        }
        let conv1 = conv(device, 3, 64, 7, 2)?;
        let bn1 = BatchNorm::pytorch(device, 64)?;
        let mut inplanes = 64;
        let mut stages = Vec::new();
        for (i, &n) in blocks.iter().enumerate() {
            let planes = 64 << i;
            let mut stage = Stack::new();
            for b in 0..n {
                let stride = if i > 0 && b == 0 { 2 } else { 1 };
                let block = Residual::new(device, kind, inplanes, planes, stride)?;
                inplanes = planes * kind.expansion();
                stage.push(&b.to_string(), Box::new(block))?;
            }
            stages.push(stage);
        }
        let layers: [Stack; 4] = stages
            .try_into()
            .map_err(|_| ModelError::Settings("four stages".into()))?;
        Ok(Self {
            features: ResNetFeatures {
                conv1,
                bn1,
                maxpool: MaxPool2d::new(3).stride(2).padding(1),
                layers,
                avgpool: AdaptiveAvgPool2d::new(1),
            },
            fc: Linear::new(device, inplanes, num_classes)?,
        })
    }

    /// torchvision's variants by name: their block and blocks per stage.
    pub const VARIANTS: &'static [(&'static str, Block, [usize; 4])] = &[
        ("resnet18", Block::Basic, [2, 2, 2, 2]),
        ("resnet34", Block::Basic, [3, 4, 6, 3]),
        ("resnet50", Block::Bottleneck, [3, 4, 6, 3]),
        ("resnet101", Block::Bottleneck, [3, 4, 23, 3]),
        ("resnet152", Block::Bottleneck, [3, 8, 36, 3]),
    ];

    /// The variant `name` of [`ResNet::VARIANTS`] (`"resnet50"`), or an
    /// error listing the names.
    pub fn named(device: &Device, name: &str, num_classes: usize) -> Result<Self> {
        let Some(&(_, kind, blocks)) = Self::VARIANTS.iter().find(|(n, _, _)| *n == name) else {
            return Err(ModelError::NotFound {
                kind: "ResNet variant",
                name: name.to_string(),
                available: Self::VARIANTS
                    .iter()
                    .map(|(n, _, _)| n.to_string())
                    .collect(),
            });
        };
        Self::new(device, kind, blocks, num_classes)
    }

    pub fn resnet18(device: &Device, num_classes: usize) -> Result<Self> {
        Self::named(device, "resnet18", num_classes)
    }

    pub fn resnet34(device: &Device, num_classes: usize) -> Result<Self> {
        Self::named(device, "resnet34", num_classes)
    }

    pub fn resnet50(device: &Device, num_classes: usize) -> Result<Self> {
        Self::named(device, "resnet50", num_classes)
    }

    pub fn resnet101(device: &Device, num_classes: usize) -> Result<Self> {
        Self::named(device, "resnet101", num_classes)
    }

    pub fn resnet152(device: &Device, num_classes: usize) -> Result<Self> {
        Self::named(device, "resnet152", num_classes)
    }

    /// Swaps the classifier for a new one (transfer learning).
    pub fn replace_fc(&mut self, fc: Linear) -> Result<()> {
        if fc.in_features() != self.fc.in_features() {
            return Err(ModelError::Shape(format!(
                "the new head takes {} features; the backbone gives {}",
                fc.in_features(),
                self.fc.in_features()
            )));
        }
        self.fc = fc;
        Ok(())
    }
}

impl Module for ResNet {
    fn forward(&self, x: &Var) -> Result<Var> {
        self.trace(x, &mut |_, _, _| {})
    }

    fn trace(&self, x: &Var, report: &mut dyn FnMut(&str, &dyn Module, &Var)) -> Result<Var> {
        let h = self.features.trace(x, report)?;
        let y = self.fc.forward(&h)?;
        report("fc", &self.fc, &y);
        Ok(y)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        self.features.visit(v);
        v.module("fc", &self.fc);
    }

    fn split_head(&self) -> Option<(&dyn Module, &dyn Module)> {
        Some((&self.features, &self.fc))
    }
}
