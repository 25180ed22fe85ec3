//! Adapter selection, the limits a device is opened with, and the pipeline
//! cache.

use kiln_backend::ops::elementwise::{unary_kernel, Operand};
use kiln_backend::*;

#[test]
fn software_adapter_is_found_and_opened_with_its_own_limits() {
    let adapters = list_adapters();
    assert!(
        !adapters.is_empty(),
        "no adapter: apt-get install -y libvulkan1 mesa-vulkan-drivers"
    );
    let ranks: Vec<bool> = adapters.iter().map(|a| a.kind.is_hardware()).collect();
    assert!(
        ranks.windows(2).all(|w| w[0] >= w[1]),
        "hardware adapters are listed first: {adapters:?}"
    );

    if let Some(soft) = adapters.iter().find(|a| a.kind == DeviceKind::Software) {
        let device = Device::software().unwrap();
        assert_eq!(device.kind(), DeviceKind::Software);
        assert_eq!(device.name(), soft.name);
        // The adapter's own limits, not the WebGPU defaults (8 buffers, 16 KiB).
        assert_eq!(
            device.summary().max_storage_buffers_per_stage,
            soft.max_storage_buffers_per_stage
        );
        assert_eq!(
            device.summary().max_workgroup_memory_bytes,
            soft.max_workgroup_memory_bytes
        );
        // `KILN_DEVICE` values resolve the same way.
        assert_eq!(Device::matching("software").unwrap().name(), soft.name);
        let fragment = soft.name.split_whitespace().next().unwrap().to_uppercase();
        assert_eq!(
            Device::matching(&fragment).unwrap().name(),
            soft.name,
            "names match case-insensitively"
        );
    }
    match adapters.iter().any(|a| a.kind.is_hardware()) {
        true => assert!(Device::gpu().unwrap().kind().is_hardware()),
        false => {
            let e = Device::gpu().unwrap_err().to_string();
            assert!(
                e.contains("software"),
                "the error points at the software adapter: {e}"
            );
        }
    }
}

#[test]
fn an_unknown_adapter_name_lists_the_adapters_present() {
    let e = Device::matching("no-such-adapter-xyz").unwrap_err();
    assert!(matches!(e, BackendError::AdapterNotFound { .. }), "{e}");
    let first = &list_adapters()[0].name;
    assert!(e.to_string().contains(first.as_str()), "{e}");
}

#[test]
fn pipelines_are_created_once_per_specialisation() {
    let device = Device::auto().unwrap();
    let x = Tensor::from_f32(&device, &[1.0, -2.0, 3.0], &[3]).unwrap();
    let out = Tensor::empty(&device, &[3], DType::F32).unwrap();
    let build = |op| {
        unary_kernel(
            &device,
            op,
            out.buffer(),
            0,
            Operand {
                buffer: x.buffer(),
                layout: StridedLayout::contiguous(&[3]),
            },
        )
    };
    build(UnaryOp::Abs).unwrap();
    let after_first = device.pipeline_count();
    build(UnaryOp::Abs).unwrap();
    assert_eq!(
        device.pipeline_count(),
        after_first,
        "the same op reuses its pipeline"
    );
    build(UnaryOp::Exp).unwrap();
    assert_eq!(
        device.pipeline_count(),
        after_first + 1,
        "another op is another specialisation"
    );
    // A parameter that lives in the kernel's data, not its constants, needs no new pipeline.
    build(UnaryOp::Scale(2.0)).unwrap();
    let with_scale = device.pipeline_count();
    build(UnaryOp::Scale(3.0)).unwrap();
    assert_eq!(device.pipeline_count(), with_scale);
}
