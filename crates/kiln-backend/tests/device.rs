//! Adapter selection, the limits a device is opened with, and the pipeline
//! cache.

use kiln_backend::codegen::{Epilogue, Expr, MapKernel, Operand, Program, Store};
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
fn generated_pipelines_are_cached_by_structure_not_values() {
    let device = Device::auto().unwrap();
    let build = |op, n: usize| {
        let x = Tensor::from_f32(&device, &vec![1.5; n], &[n]).unwrap();
        let out = Tensor::empty(&device, &[n], DType::F32).unwrap();
        let mut p = Program::default();
        let a = p.push(Expr::Load(0));
        let r = p.push(Expr::Unary(op, a));
        let k = device
            .build(
                &MapKernel::over(
                    "t",
                    &[n],
                    Epilogue {
                        program: p.clone(),
                        operands: vec![Operand {
                            buffer: x.buffer().clone(),
                            layout: StridedLayout::contiguous(&[n]),
                        }],
                        stores: vec![Store {
                            expr: r,
                            buffer: out.buffer().clone(),
                            layout: StridedLayout::contiguous(&[n]),
                        }],
                    },
                )
                .into(),
            )
            .unwrap();
        device.run(&[&k]).unwrap();
        out.to_vec_f32().unwrap()[0]
    };
    build(UnaryOp::Abs, 3);
    let after_first = device.pipeline_count();
    build(UnaryOp::Abs, 7);
    assert_eq!(
        device.pipeline_count(),
        after_first,
        "the same op at another size reuses its pipeline"
    );
    build(UnaryOp::Exp, 3);
    assert_eq!(
        device.pipeline_count(),
        after_first + 1,
        "another op is another structure"
    );
    // A scalar lives in the kernel's words, not its source: no new pipeline.
    assert_eq!(build(UnaryOp::Scale(2.0), 3), 3.0);
    let with_scale = device.pipeline_count();
    assert_eq!(build(UnaryOp::Scale(3.0), 3), 4.5);
    assert_eq!(device.pipeline_count(), with_scale);
}

#[test]
fn writes_with_no_work_after_them_are_flushed_so_staging_memory_stays_bounded() {
    let device = Device::auto().unwrap();
    let t = Tensor::from_f32(&device, &[0.0; 16], &[16]).unwrap();
    device.synchronize().unwrap();
    let before = device.submissions();
    // Loading weights again and again writes without ever running a step:
    // wgpu keeps each write's staging memory until a submission.
    for k in 0..3000 {
        device
            .write(t.buffer(), 0, bytemuck::cast_slice(&[k as f32; 16]))
            .unwrap();
    }
    let flushes = device.submissions() - before;
    assert!(
        (2..=3).contains(&flushes),
        "3000 writes flushed {flushes} times; expected one per 1024"
    );
    assert_eq!(
        t.to_vec_f32().unwrap(),
        vec![2999.0; 16],
        "the last write wins"
    );
}

#[test]
fn kernel_strategies_parse_and_a_bad_one_names_the_choices() {
    for (text, want) in [
        ("hardware", KernelStrategy::Hardware),
        (" GPU ", KernelStrategy::Hardware),
        ("software", KernelStrategy::Software),
        ("Cpu", KernelStrategy::Software),
    ] {
        assert_eq!(KernelStrategy::parse(text).unwrap(), want, "{text:?}");
    }
    let e = KernelStrategy::parse("fast").unwrap_err().to_string();
    assert!(
        e.contains("KILN_KERNELS") && e.contains("\"fast\"") && e.contains("hardware or software"),
        "{e}"
    );
}

/// A forced strategy changes the shapes' family, never the adapter's own
/// facts: the software adapter's loop limit holds under either, and only
/// the software strategy shares rows across lanes.
#[test]
fn a_forced_strategy_keeps_the_adapters_facts() {
    let device = Device::software().unwrap();
    let summary = device.summary().clone();
    for strategy in [KernelStrategy::Software, KernelStrategy::Hardware] {
        let forced = device.with_kernel_strategy(strategy);
        let p = forced.kernel_profile();
        assert!(forced.same(&device), "the same device underneath");
        assert_eq!(p.strategy, strategy);
        assert_eq!(p.source, StrategySource::Code);
        assert_eq!(p.adapter_kind, DeviceKind::Software);
        assert_eq!(p.loop_trip_limit, Some(MAX_LOOP_TRIPS));
        assert_eq!(p.workgroup_memory_bytes, summary.max_workgroup_memory_bytes);
        let eight = summary.subgroups && summary.subgroup_sizes == (8, 8);
        assert_eq!(
            p.shares_rows_across_lanes(),
            eight && strategy == KernelStrategy::Software,
            "{p}"
        );
        assert!(p.to_string().contains("forced in code"), "{p}");
    }
    // Without subgroups no strategy shares rows.
    let portable = Device::software_without_subgroups().unwrap();
    assert_eq!(portable.kernel_profile().subgroup_width, None);
    assert!(!portable.kernel_profile().shares_rows_across_lanes());
}
