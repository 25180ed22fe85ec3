//! Optimizer steps: each rule written once, as an elementwise program
//! (`UpdateRule::program`) that updates a parameter and its state in place.
//! The kernels are generated; several parameters share a dispatch as
//! segments of one kernel (PyTorch's `foreach` optimizers), as many as the
//! adapter's storage-buffer limit allows.

use crate::codegen::{Expr, MapKernel, Operand, Program, Render, Rendered, Segment, Store};
use crate::error::{invalid, shape_error, Result};
use crate::layout::StridedLayout;
use crate::ops::elementwise::{BinaryOp, UnaryOp};
use crate::{Buffer, KernelProfile};

/// Words the `hyper` buffer of an optimizer step holds:
/// Adam: 0 step size lr·√(1−β₂ᵗ)/(1−β₁ᵗ), 1 ε (as added to √v), 2 β₁, 3 β₂,
/// 4 decoupled decay lr·λ (AdamW), 5 L2 coefficient added to the gradient;
/// SGD: 0 lr, 1 momentum, 2 weight decay (L2), 3 Nesterov (0 or 1),
/// 4 dampening of the gradient entering the momentum buffer;
/// Adagrad: 0 the step's (decayed) lr, 1 ε (added to √Σg²), 2 weight decay (L2).
pub const HYPER_WORDS: usize = 8;

/// Which update rule a step applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UpdateRule {
    /// Adam/AdamW: state 1 = first moment, state 2 = second moment.
    Adam,
    /// SGD with momentum (PyTorch's rule): state 1 = momentum buffer.
    Sgd,
    /// Adagrad (PyTorch's rule): state 1 = the sum of squared gradients.
    Adagrad,
}

impl UpdateRule {
    /// State tensors per parameter.
    pub fn states(self) -> usize {
        match self {
            UpdateRule::Adam => 2,
            UpdateRule::Sgd | UpdateRule::Adagrad => 1,
        }
    }

    /// The rule as a program over operands `[param, grad, states…, hyper
    /// word 0, 1, …]`; returns it with the expressions of the new parameter
    /// and the new states, in that order.
    pub fn program(self) -> (Program, Vec<usize>) {
        let mut p = Program::default();
        let (param, grad) = (p.push(Expr::Load(0)), p.push(Expr::Load(1)));
        let states: Vec<usize> = (0..self.states())
            .map(|k| p.push(Expr::Load(2 + k)))
            .collect();
        let first_hyper = 2 + self.states();
        let h: Vec<usize> = (0..6)
            .map(|k| p.push(Expr::Load(first_hyper + k)))
            .collect();
        let mul = |p: &mut Program, a, b| p.push(Expr::Binary(BinaryOp::Mul, a, b));
        let add = |p: &mut Program, a, b| p.push(Expr::Binary(BinaryOp::Add, a, b));
        let sub = |p: &mut Program, a, b| p.push(Expr::Binary(BinaryOp::Sub, a, b));
        // 1 − x
        let one_minus = |p: &mut Program, x| {
            let n = p.push(Expr::Unary(UnaryOp::Neg, x));
            p.push(Expr::Unary(UnaryOp::AddScalar(1.0), n))
        };
        match self {
            UpdateRule::Adam => {
                let (m, v) = (states[0], states[1]);
                // g += L2·p
                let l2 = mul(&mut p, h[5], param);
                let g = add(&mut p, grad, l2);
                // m = β₁·m + (1 − β₁)·g
                let a = mul(&mut p, h[2], m);
                let c = one_minus(&mut p, h[2]);
                let b = mul(&mut p, c, g);
                let m_new = add(&mut p, a, b);
                // v = β₂·v + (1 − β₂)·g²
                let a = mul(&mut p, h[3], v);
                let c = one_minus(&mut p, h[3]);
                let g2 = mul(&mut p, g, g);
                let b = mul(&mut p, c, g2);
                let v_new = add(&mut p, a, b);
                // p = p − decay·p − step·m/(√v + ε)
                let decay = mul(&mut p, h[4], param);
                let kept = sub(&mut p, param, decay);
                let root = p.push(Expr::Unary(UnaryOp::Sqrt, v_new));
                let den = add(&mut p, root, h[1]);
                let num = mul(&mut p, h[0], m_new);
                let step = p.push(Expr::Binary(BinaryOp::Div, num, den));
                let p_new = sub(&mut p, kept, step);
                (p, vec![p_new, m_new, v_new])
            }
            UpdateRule::Sgd => {
                let buf = states[0];
                // g += λ·p; b = μ·b + (1 − d)·g; step along g + μ·b (Nesterov) or b
                let wd = mul(&mut p, h[2], param);
                let g = add(&mut p, grad, wd);
                let mb = mul(&mut p, h[1], buf);
                let undamped = one_minus(&mut p, h[4]);
                let g_in = mul(&mut p, undamped, g);
                let b_new = add(&mut p, mb, g_in);
                let mb_new = mul(&mut p, h[1], b_new);
                let nesterov = add(&mut p, g, mb_new);
                let dir = p.push(Expr::Select(h[3], nesterov, b_new));
                let step = mul(&mut p, h[0], dir);
                let p_new = sub(&mut p, param, step);
                (p, vec![p_new, b_new])
            }
            UpdateRule::Adagrad => {
                // g += λ·p; s = s + g²; p = p − lr·g/(√s + ε)
                let wd = mul(&mut p, h[2], param);
                let g = add(&mut p, grad, wd);
                let g2 = mul(&mut p, g, g);
                let s_new = add(&mut p, states[0], g2);
                let root = p.push(Expr::Unary(UnaryOp::Sqrt, s_new));
                let den = add(&mut p, root, h[1]);
                let num = mul(&mut p, h[0], g);
                let step = p.push(Expr::Binary(BinaryOp::Div, num, den));
                let p_new = sub(&mut p, param, step);
                (p, vec![p_new, s_new])
            }
        }
    }
}

/// One parameter of an optimizer step: its element count, the parameter,
/// its gradient and its state (one or two buffers), updated in place.
#[derive(Clone, Debug)]
pub struct UpdateSlot {
    pub n: usize,
    pub param: Buffer,
    pub grad: Buffer,
    pub states: Vec<Buffer>,
}

/// How many parameters a device of `profile` can update in one dispatch
/// under `rule`: each takes its parameter, gradient and state buffers; the
/// hyperparameters and the kernel's words take two more.
pub fn update_group_size(profile: &KernelProfile, rule: UpdateRule) -> usize {
    let max = profile.max_storage_buffers_per_stage as usize;
    (max.saturating_sub(2) / (2 + rule.states())).clamp(1, 16)
}

/// One step of `rule` on every parameter of `slots`, in one dispatch,
/// reading the step's hyperparameters from `hyper` ([`HYPER_WORDS`] f32
/// words). Four elements per invocation when every size is a multiple of 4.
#[derive(Clone, Debug)]
pub struct UpdateKernel {
    pub rule: UpdateRule,
    pub slots: Vec<UpdateSlot>,
    pub hyper: Buffer,
}

impl Render for UpdateKernel {
    fn render(&self, profile: &KernelProfile) -> Result<Rendered<'_>> {
        let (rule, slots, hyper) = (self.rule, &self.slots, &self.hyper);
        let name = format!("{rule:?}").to_lowercase();
        let most = update_group_size(profile, rule);
        if slots.is_empty() || slots.len() > most {
            return Err(invalid(
                &name,
                format!(
                    "one dispatch updates 1 to {most} parameters, not {}",
                    slots.len()
                ),
            ));
        }
        if hyper.size() < (HYPER_WORDS * 4) as u64 {
            return Err(shape_error(
                &name,
                format!("the hyperparameters need {HYPER_WORDS} words"),
            ));
        }
        let (program, results) = rule.program();
        let segments = slots
            .iter()
            .map(|s| segment(rule, s, hyper, &results))
            .collect::<Result<_>>()?;
        let map = MapKernel {
            label: format!("{name}×{}", slots.len()),
            program,
            segments,
        };
        Ok(Rendered::Generated(map.generated()?))
    }
}

/// The segment of one parameter: it reads the parameter, its gradient, its
/// states and the hyperparameters (broadcast), and writes the parameter and
/// its states.
fn segment(rule: UpdateRule, s: &UpdateSlot, hyper: &Buffer, results: &[usize]) -> Result<Segment> {
    if s.states.len() != rule.states() {
        return Err(invalid(
            &format!("{rule:?}").to_lowercase(),
            format!(
                "{rule:?} keeps {} state tensors per parameter, {} given",
                rule.states(),
                s.states.len()
            ),
        ));
    }
    let contiguous = StridedLayout::contiguous(&[s.n]);
    let at = |buffer: &Buffer| Operand {
        buffer: buffer.clone(),
        layout: contiguous.clone(),
    };
    let mut operands = vec![at(&s.param), at(&s.grad)];
    operands.extend(s.states.iter().map(at));
    operands.extend((0..6).map(|k| Operand {
        buffer: hyper.clone(),
        layout: StridedLayout {
            offset: k,
            shape: vec![s.n],
            strides: vec![0],
        },
    }));
    let written = std::iter::once(&s.param).chain(&s.states);
    let stores = written
        .zip(results)
        .map(|(buffer, &expr)| Store {
            expr,
            buffer: buffer.clone(),
            layout: contiguous.clone(),
        })
        .collect();
    Ok(Segment {
        shape: vec![s.n],
        operands,
        stores,
    })
}
