//! Checks that what goes wrong on the device comes back as kiln's typed
//! errors, naming what kiln was doing, never as wgpu's panic: a dispatch
//! wgpu refuses, an allocation over the adapter's limit, a lost device.
//! Here rather than in `tests/` because provoking a refused dispatch takes
//! a buffer destroyed under a built kernel, which only the crate can do.

use crate::codegen::{Epilogue, Expr, MapKernel, Operand, Program, Store};
use crate::{BackendError, DType, Device, Kernel, StridedLayout, Tensor};

fn device() -> Device {
    Device::auto().expect("an adapter: apt-get install -y libvulkan1 mesa-vulkan-drivers")
}

/// `out = x + 1` over four elements.
fn add_one(device: &Device, x: &Tensor, out: &Tensor) -> Kernel {
    let mut program = Program::default();
    let v = program.push(Expr::Load(0));
    let r = program.push(Expr::Unary(crate::UnaryOp::AddScalar(1.0), v));
    let layout = StridedLayout::contiguous(&[4]);
    let epilogue = Epilogue {
        program,
        operands: vec![Operand {
            buffer: x.buffer().clone(),
            layout: layout.clone(),
        }],
        stores: vec![Store {
            expr: r,
            buffer: out.buffer().clone(),
            layout,
        }],
    };
    device
        .build(&MapKernel::over("add_one", &[4], epilogue).into())
        .unwrap()
}

#[test]
fn a_dispatch_wgpu_refuses_is_a_validation_error_naming_the_kernel() {
    let device = device();
    let x = Tensor::from_f32(&device, &[1.0, 2.0, 3.0, 4.0], &[4]).unwrap();
    let out = Tensor::empty(&device, &[4], DType::F32).unwrap();
    let kernel = add_one(&device, &x, &out);
    device.run(&[&kernel]).unwrap();
    assert_eq!(out.to_vec_f32().unwrap(), [2.0, 3.0, 4.0, 5.0]);
    // The input's buffer destroyed under the built kernel.
    x.buffer().raw().destroy();
    match device.run(&[&kernel]) {
        Err(BackendError::Validation { during, detail }) => {
            assert!(
                during.starts_with("a submission of 1 kernels (add_one"),
                "{during}"
            );
            assert!(!detail.is_empty());
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    // Reported once: the device works on.
    let y = Tensor::from_f32(&device, &[5.0; 4], &[4]).unwrap();
    let out2 = Tensor::empty(&device, &[4], DType::F32).unwrap();
    device.run(&[&add_one(&device, &y, &out2)]).unwrap();
    assert_eq!(out2.to_vec_f32().unwrap(), [6.0; 4]);
}

#[test]
fn an_allocation_over_the_limit_is_an_error_naming_it() {
    let device = device();
    let numel = (device.max_binding_bytes() / 4 + 1) as usize;
    match device.alloc("a huge activation", numel, DType::F32) {
        Err(BackendError::BindingTooLarge { what, bytes, limit }) => {
            assert_eq!(what, "a huge activation");
            assert!(bytes > limit);
        }
        other => panic!("expected BindingTooLarge, got {other:?}"),
    }
}

#[test]
fn a_lost_device_is_an_error_at_every_later_call() {
    let device = device();
    let x = Tensor::from_f32(&device, &[1.0; 4], &[4]).unwrap();
    let out = Tensor::empty(&device, &[4], DType::F32).unwrap();
    let kernel = add_one(&device, &x, &out);
    device.destroy();
    let lost = |r: std::result::Result<(), BackendError>| match r {
        Err(BackendError::DeviceLost { reason }) => {
            assert!(reason.contains("Destroyed"), "{reason}")
        }
        other => panic!("expected DeviceLost, got {other:?}"),
    };
    lost(device.run(&[&kernel]));
    lost(device.synchronize());
    lost(device.alloc("after the loss", 4, DType::F32).map(drop));
    lost(out.to_vec_f32().map(drop));
}
