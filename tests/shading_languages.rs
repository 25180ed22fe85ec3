//! kiln promises Metal and DX12 as well as Vulkan, and only Vulkan runs
//! here. So every kernel that the four models' training steps build, under
//! both kernel profiles, goes through naga's Metal (MSL), DX12 (HLSL) and
//! Vulkan (SPIR-V) back ends, as wgpu translates them on those platforms:
//! a kernel that one back end refuses (a subgroup op, a workgroup array,
//! an atomic) fails here instead of on a user's Mac or Windows machine.
//! The handwritten shaders go through the same back ends.

use std::collections::BTreeMap;

use kiln::backend::shaders::{prelude, ShaderId};
use kiln::backend::KernelStrategy;
use kiln::prelude::*;

mod common;
use naga::back::{hlsl, msl, spv};
use naga::valid::{Capabilities, ModuleInfo, ShaderStages, SubgroupOperationSet, Validator};

/// Metal Shading Language 2.4 (macOS 12, iOS 15): subgroup (SIMD-group)
/// operations need 2.1 and wgpu asks for what the device supports.
const MSL_VERSION: (u8, u8) = (2, 4);
/// Shader model 6.0 is the first with wave (subgroup) intrinsics; wgpu's
/// DX12 back end reports subgroups only from there.
const HLSL_MODEL: hlsl::ShaderModel = hlsl::ShaderModel::V6_0;
/// SPIR-V 1.3 (Vulkan 1.1) is the first with subgroup operations.
const SPIRV_VERSION: (u8, u8) = (1, 3);

/// The four models' training steps at the shapes their benches time, on
/// `device`: every generated kernel's WGSL by source text (the same text
/// is one pipeline), with the label of a kernel that has it.
fn step_kernels(device: &Device, sources: &mut BTreeMap<String, String>) {
    let mut add = |model: &str, kernels: Vec<(String, Option<String>)>| {
        assert!(!kernels.is_empty(), "{model}: a step with no kernels");
        for (label, source) in kernels {
            if let Some(source) = source {
                sources.entry(source).or_insert(format!("{model}: {label}"));
            }
        }
    };

    let mut mlp = common::tutorial_mlp(device, 1);
    add("MLP", mlp.train_kernels(32).unwrap());

    manual_seed(1);
    let mut cnn = Model::new(device, SimpleCnn::new(device, 10).unwrap(), [3, 32, 32]);
    cnn.compile(
        Optimizer::adam_torch(1e-3),
        Loss::SparseCategoricalCrossEntropyFromLogits,
        &[Metric::SparseCategoricalAccuracy],
    )
    .unwrap();
    add("SimpleCNN", cnn.train_kernels(64).unwrap());

    let mut lstm = Sequential::new(device, [10, 3])
        .seed(1)
        .lstm(50, Activation::Relu, true)
        .lstm(50, Activation::Relu, false)
        .dense(1, Activation::None);
    lstm.compile(Optimizer::adam(1e-3), Loss::MeanSquaredError, &[])
        .unwrap();
    add("LSTM", lstm.train_kernels(32).unwrap());

    for frozen in [true, false] {
        manual_seed(1);
        let mut net = ResNet::resnet50(device, 1000).unwrap();
        net.replace_fc(Linear::new(device, 2048, 10).unwrap())
            .unwrap();
        if frozen {
            net.features.freeze();
        }
        let mut resnet = Model::new(device, net, [3, 64, 64]);
        resnet
            .compile(
                Optimizer::adam_torch(1e-3),
                Loss::SparseCategoricalCrossEntropyFromLogits,
                &[],
            )
            .unwrap();
        let name = if frozen {
            "ResNet-50 head"
        } else {
            "ResNet-50 full"
        };
        add(name, resnet.train_kernels(8).unwrap());
    }
}

/// Parses and validates `source` as wgpu would for a device with
/// subgroups, then writes it with each back end; the error names the
/// kernel, the back end and what it refused.
fn translate(what: &str, source: &str) -> Result<(), String> {
    let module = naga::front::wgsl::parse_str(source)
        .map_err(|e| format!("{what} does not parse:\n{}", e.emit_to_string(source)))?;
    let info: ModuleInfo = Validator::new(
        naga::valid::ValidationFlags::all(),
        Capabilities::default() | Capabilities::SUBGROUP,
    )
    .subgroup_stages(ShaderStages::COMPUTE)
    .subgroup_operations(SubgroupOperationSet::all())
    .validate(&module)
    .map_err(|e| format!("{what} does not validate:\n{}", e.emit_to_string(source)))?;
    // wgpu gives every override its pipeline's constant before a back end
    // sees the module; the defaults stand in for them here.
    let (module, info) = naga::back::pipeline_constants::process_overrides(
        &module,
        &info,
        None,
        &Default::default(),
    )
    .map_err(|e| format!("{what}: its overrides do not resolve: {e}"))?;

    let options = msl::Options {
        lang_version: MSL_VERSION,
        ..Default::default()
    };
    msl::write_string(&module, &info, &options, &msl::PipelineOptions::default())
        .map_err(|e| format!("{what}: MSL {MSL_VERSION:?} refuses it: {e}"))?;

    let options = hlsl::Options {
        shader_model: HLSL_MODEL,
        ..Default::default()
    };
    let mut text = String::new();
    hlsl::Writer::new(&mut text, &options, &hlsl::PipelineOptions::default())
        .write(&module, &info, None)
        .map_err(|e| format!("{what}: HLSL {HLSL_MODEL:?} refuses it: {e}"))?;

    let options = spv::Options {
        lang_version: SPIRV_VERSION,
        ..Default::default()
    };
    spv::write_vec(&module, &info, &options, None)
        .map_err(|e| format!("{what}: SPIR-V {SPIRV_VERSION:?} refuses it: {e}"))?;
    Ok(())
}

#[test]
fn every_training_kernel_translates_to_msl_hlsl_and_spirv_under_both_profiles() {
    let base = kiln::device_from_flag(None).expect("an adapter");
    let mut per_profile = Vec::new();
    let mut sources = BTreeMap::new();
    for strategy in [KernelStrategy::Software, KernelStrategy::Hardware] {
        let mut these = BTreeMap::new();
        step_kernels(&base.with_kernel_strategy(strategy), &mut these);
        per_profile.push((strategy, these.len()));
        sources.append(&mut these);
    }
    // Each profile has kernels of its own: the GPU-class tiled products
    // stage operands in workgroup memory, which no software kernel does.
    let staged = sources
        .keys()
        .filter(|s| s.contains("var<workgroup>"))
        .count();
    assert!(
        staged > 0,
        "no tiled product among {} kernels",
        sources.len()
    );
    // And where subgroups are 8 wide (lavapipe on AVX2), the software
    // profile's block kernels share rows across lanes through subgroup ops.
    let sharing = sources
        .keys()
        .filter(|s| s.contains("subgroupBroadcast"))
        .count();
    let software = base.with_kernel_strategy(KernelStrategy::Software);
    if software.kernel_profile().shares_rows_across_lanes() {
        assert!(sharing > 0, "no kernel shares rows across lanes");
    }

    let prelude = prelude();
    let mut failures: Vec<String> = sources
        .iter()
        .filter_map(|(source, what)| translate(what, &format!("{prelude}\n{source}")).err())
        .collect();
    for shader in ShaderId::ALL {
        if let Err(e) = translate(shader.name(), &shader.source()) {
            failures.push(e);
        }
    }
    println!(
        "{} distinct generated kernels ({per_profile:?}), {staged} with workgroup memory, {sharing} with subgroup operations, and {} handwritten modules translated",
        sources.len(),
        ShaderId::ALL.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} kernels fail to translate:\n{}",
        failures.len(),
        sources.len() + ShaderId::ALL.len(),
        failures.join("\n\n")
    );
}
