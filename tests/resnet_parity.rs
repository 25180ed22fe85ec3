//! ResNet-50 against torchvision (tests/fixtures/resnet50_*formula.safetensors,
//! see ../shared/fixtures/README.md): the weights are regenerated from the
//! fixture's formula, written under torchvision's names to a safetensors
//! and a `.pth` file, and loaded through the loader. Eval-mode logits and
//! intermediate activations; the transfer-learning step (frozen backbone in
//! training mode, a new 3-class head): loss, head gradients, running
//! statistics; and `kiln infer` from either weights file.

use std::io::Write;
use std::path::{Path, PathBuf};

use kiln::graph::{Mode, Plan, Tape};
use kiln::models::StateDict;
use kiln::prelude::*;
use safetensors::SafeTensors;

mod common;
use common::{rel_norm, tensor};

fn fixture(variant: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/resnet50_{variant}.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(path).unwrap()
}

/// One state-dict entry of the fixture's list.
struct Entry {
    name: String,
    shape: Vec<usize>,
    kind: String,
}

fn entries(st_bytes: &[u8]) -> (Vec<Entry>, bool, f64) {
    let (_, meta) = SafeTensors::read_metadata(st_bytes).unwrap();
    let desc: serde_json::Value =
        serde_json::from_str(&meta.metadata().as_ref().unwrap()["description"]).unwrap();
    let list = desc["state_dict"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| Entry {
            name: e["name"].as_str().unwrap().to_string(),
            shape: e["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect(),
            kind: e["kind"].as_str().unwrap().to_string(),
        })
        .collect();
    (list, desc["variant"] == "hash", desc["C"].as_f64().unwrap())
}

/// The formula's value `s` of element `i` of entry `k`.
fn s(k: usize, i: usize, hash: bool) -> f64 {
    let x = 12.9898 * i as f64 + 78.233 * k as f64;
    if hash {
        let v = 43758.5453 * x.sin();
        2.0 * (v - v.floor()) - 1.0
    } else {
        x.sin()
    }
}

/// The values of entry `k` (f32, and whether it is an integer counter).
fn values(k: usize, e: &Entry, hash: bool, c: f64) -> (Vec<f32>, bool) {
    let n: usize = e.shape.iter().product();
    let f =
        |g: &dyn Fn(f64) -> f64| -> Vec<f32> { (0..n).map(|i| g(s(k, i, hash)) as f32).collect() };
    match e.kind.as_str() {
        "conv_weight" | "fc_weight" => {
            let fan_in = (n / e.shape[0]) as f64;
            (f(&|s| s * (c / fan_in).sqrt()), false)
        }
        "bn_weight" => (f(&|s| 1.0 + 0.1 * s), false),
        "bn_bias" | "bn_running_mean" => (f(&|s| 0.1 * s), false),
        "bn_running_var" => (f(&|s| 1.0 + 0.2 * s * s), false),
        "bn_num_batches_tracked" => (vec![0.0; n], true),
        "fc_bias" => (f(&|s| 0.01 * s), false),
        other => panic!("unknown entry kind {other}"),
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-resnet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A tensor's name, shape, values, and whether it is stored as int64.
type NamedWeight = (String, Vec<usize>, Vec<f32>, bool);

/// The weights as a safetensors file.
fn write_safetensors(path: &Path, weights: &[NamedWeight]) {
    let mut sd = StateDict::default();
    let mut ints = Vec::new();
    for (name, shape, v, int) in weights {
        sd.tensors.insert(name.clone(), (shape.clone(), v.clone()));
        if *int {
            ints.push(name.clone());
        }
    }
    std::fs::write(path, sd.to_safetensors_bytes(&ints).unwrap()).unwrap();
}

/// The weights as torch.save writes a state dict: a zip of a protocol-2
/// pickle of an OrderedDict of `_rebuild_tensor_v2` calls, one storage
/// member per tensor.
fn write_pth(path: &Path, weights: &[NamedWeight]) {
    let text = |p: &mut Vec<u8>, s: &str| {
        p.push(b'X');
        p.extend((s.len() as u32).to_le_bytes());
        p.extend(s.as_bytes());
    };
    let int = |p: &mut Vec<u8>, v: usize| {
        p.push(b'J');
        p.extend((v as i32).to_le_bytes());
    };
    let mut p: Vec<u8> = b"\x80\x02ccollections\nOrderedDict\n)R(".to_vec();
    let mut members: Vec<(String, Vec<u8>)> = Vec::new();
    for (k, (name, shape, v, is_int)) in weights.iter().enumerate() {
        text(&mut p, name);
        p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n((");
        text(&mut p, "storage");
        p.extend(if *is_int {
            &b"ctorch\nLongStorage\n"[..]
        } else {
            &b"ctorch\nFloatStorage\n"[..]
        });
        text(&mut p, &k.to_string());
        text(&mut p, "cpu");
        int(&mut p, v.len());
        p.extend(b"tQ");
        int(&mut p, 0);
        p.push(b'(');
        for &d in shape {
            int(&mut p, d);
        }
        p.extend(b"t(");
        let mut stride = 1;
        let strides: Vec<usize> = shape
            .iter()
            .rev()
            .map(|&d| {
                let s = stride;
                stride *= d;
                s
            })
            .collect();
        for &st in strides.iter().rev() {
            int(&mut p, st);
        }
        p.extend(b"t\x89ccollections\nOrderedDict\n)RtR");
        let bytes: Vec<u8> = if *is_int {
            v.iter().flat_map(|&x| (x as i64).to_le_bytes()).collect()
        } else {
            v.iter().flat_map(|x| x.to_le_bytes()).collect()
        };
        members.push((format!("archive/data/{k}"), bytes));
    }
    p.extend(b"u.");
    let file = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(file);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    z.start_file("archive/data.pkl", opts).unwrap();
    z.write_all(&p).unwrap();
    z.start_file("archive/byteorder", opts).unwrap();
    z.write_all(b"little").unwrap();
    for (name, bytes) in members {
        z.start_file(name, opts).unwrap();
        z.write_all(&bytes).unwrap();
    }
    z.finish().unwrap();
}

fn weights_of(variant: &str) -> (Vec<NamedWeight>, bool, f64) {
    let bytes = fixture(variant);
    let (list, hash, c) = entries(&bytes);
    assert_eq!(list.len(), 320);
    let w = list
        .iter()
        .enumerate()
        .map(|(k, e)| {
            let (v, int) = values(k, e, hash, c);
            (e.name.clone(), e.shape.clone(), v, int)
        })
        .collect();
    (w, hash, c)
}

/// Channels 0 and 1 of an NCHW tensor.
fn first_two_channels(v: &[f32], shape: &[usize]) -> Vec<f32> {
    let plane = shape[2] * shape[3];
    (0..shape[0])
        .flat_map(|n| v[n * shape[1] * plane..(n * shape[1] + 2) * plane].to_vec())
        .collect()
}

/// Eval logits and layer outputs, relative norm: float32 lands at
/// 3–7e-7 here (both kernel profiles).
const EVAL_TOLERANCE: f64 = 1e-5;
/// The transfer step (train-mode batch norm over 4 images, the loss, the
/// head's gradients, running statistics), relative norm: measured at most
/// 1.5e-4 (fc.weight's gradient), 1.1e-4 for the logits.
const TRANSFER_TOLERANCE: f64 = 2e-4;

fn eval_parity(variant: &str) {
    let device = kiln::device_from_flag(None).unwrap();
    let bytes = fixture(variant);
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (weights, _, _) = weights_of(variant);
    let path = scratch(&format!("{variant}.safetensors"));
    write_safetensors(&path, &weights);
    let net = ResNet::resnet50(&device, 1000).unwrap();
    net.load_weights(&path, true).unwrap();
    net.eval();
    // Logits and the outputs of layer1 and layer4, from one plan.
    let tape = Tape::new(Mode::Eval);
    let x = tape.input("x", &[2, 3, 64, 64]);
    let mut taps: Vec<(String, Var)> = Vec::new();
    let logits = net
        .trace(&x, &mut |name, _, v| {
            taps.push((name.to_string(), v.clone()))
        })
        .unwrap();
    let tap = |n: &str| taps.iter().find(|(m, _)| m == n).unwrap().1.clone();
    let (l1, l4) = (tap("layer1"), tap("layer4"));
    let graph = tape.graph();
    let mut plan = Plan::compile(&device, &graph, &[logits.id(), l1.id(), l4.id()]).unwrap();
    let out = plan.run(&[("x", &tensor(&st, "input"))]).unwrap();
    let checks = [
        ("logits", out[0].clone()),
        ("layer1_out_ch0_1", first_two_channels(&out[1], l1.shape())),
        ("layer4_out_ch0_1", first_two_channels(&out[2], l4.shape())),
    ];
    for (name, got) in checks {
        let err = rel_norm(&got, &tensor(&st, name));
        eprintln!("{variant} {name}: relative error {err:e}");
        assert!(
            err <= EVAL_TOLERANCE,
            "{variant} {name}: relative error {err:e}"
        );
    }
}

#[test]
fn resnet50_eval_matches_torchvision_hash_weights() {
    eval_parity("hashformula");
}

#[test]
fn resnet50_eval_matches_torchvision_sinusoid_weights() {
    eval_parity("formula");
}

#[test]
fn resnet50_transfer_step_matches_torchvision() {
    let device = kiln::device_from_flag(None).unwrap();
    let bytes = fixture("hashformula");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (weights, hash, c) = weights_of("hashformula");
    let path = scratch("transfer.safetensors");
    write_safetensors(&path, &weights);
    let mut net = ResNet::resnet50(&device, 1000).unwrap();
    net.load_weights(&path, true).unwrap();
    net.freeze();
    // The new head: fc.weight from k = 318, fc.bias from k = 319.
    let head = Linear::new(&device, 2048, 3).unwrap();
    let e = |shape: Vec<usize>, kind: &str| Entry {
        name: String::new(),
        shape,
        kind: kind.into(),
    };
    head.weight
        .write(&values(318, &e(vec![3, 2048], "fc_weight"), hash, c).0)
        .unwrap();
    head.bias
        .as_ref()
        .unwrap()
        .write(&values(319, &e(vec![3], "fc_bias"), hash, c).0)
        .unwrap();
    net.replace_fc(head).unwrap();
    net.train();
    let mut model = Model::new(&device, net, [3, 64, 64]);
    model
        .compile(
            Optimizer::sgd(0.1),
            Loss::SparseCategoricalCrossEntropyFromLogits,
            &[],
        )
        .unwrap();
    let (x, labels) = (
        tensor(&st, "transfer.input"),
        tensor(&st, "transfer.labels"),
    );
    assert_eq!(labels, vec![1.0, 1.0, 0.0, 2.0]);
    let close = |name: &str, got: &[f32]| {
        let want = tensor(&st, name);
        assert_eq!(got.len(), want.len(), "{name}: length");
        let err = rel_norm(got, &want);
        eprintln!("transfer {name}: relative error {err:e}");
        assert!(err <= TRANSFER_TOLERANCE, "{name}: relative error {err:e}");
        // No element far off either, relative to the tensor's scale.
        let scale = want.iter().fold(0.0f32, |m, w| m.max(w.abs()));
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-3 * scale,
                "{name}[{i}]: {g} vs {w} (scale {scale})"
            );
        }
    };
    // Training-mode logits (batch statistics), without touching state.
    let tape = Tape::new(Mode::Train {
        update_state: false,
    });
    let xv = tape.input("x", &[4, 3, 64, 64]);
    let logits = model.module().forward(&xv).unwrap();
    let graph = tape.graph();
    let mut plan = Plan::compile(&device, &graph, &[logits.id()]).unwrap();
    close("transfer.logits", &plan.run(&[("x", &x)]).unwrap()[0]);
    // Loss and the only gradients: the head's.
    let (loss, grads) = model.loss_and_gradients(&x, &labels).unwrap();
    close("transfer.loss", &[loss]);
    let names: Vec<&str> = grads.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["fc.weight", "fc.bias"]);
    close("transfer.grad.fc.weight", &grads[0].1);
    close("transfer.grad.fc.bias", &grads[1].1);
    // One training step moves every running statistic, frozen or not.
    model.train_on_batch(&x, &labels).unwrap();
    for bn in ["bn1", "layer4.2.bn3"] {
        for stat in ["running_mean", "running_var"] {
            close(
                &format!("transfer.{bn}.{stat}"),
                &model.value(&format!("{bn}.{stat}")).unwrap(),
            );
        }
        assert_eq!(
            model.value(&format!("{bn}.num_batches_tracked")).unwrap(),
            vec![1.0]
        );
    }
}

#[test]
fn kiln_infer_reproduces_the_logits_from_safetensors_and_pth() {
    let bytes = fixture("hashformula");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (weights, _, _) = weights_of("hashformula");
    let (sf, pth) = (scratch("infer.safetensors"), scratch("infer.pth"));
    write_safetensors(&sf, &weights);
    write_pth(&pth, &weights);
    let mut input = StateDict::default();
    input
        .tensors
        .insert("input".into(), (vec![2, 3, 64, 64], tensor(&st, "input")));
    let input_path = scratch("input.safetensors");
    std::fs::write(&input_path, input.to_safetensors_bytes(&[]).unwrap()).unwrap();
    for w in [&sf, &pth] {
        let out = scratch("logits.safetensors");
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["infer", "--model", "resnet50", "--weights"])
            .arg(w)
            .arg("--input")
            .arg(&input_path)
            .arg("--output")
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success(), "kiln infer with {}", w.display());
        let got = StateDict::read_safetensors(&out).unwrap();
        let (shape, logits) = &got.tensors["logits"];
        assert_eq!(shape, &vec![2, 1000]);
        let err = rel_norm(logits, &tensor(&st, "logits"));
        assert!(err < 1e-4, "{}: relative error {err:e}", w.display());
    }
    // A wrong model for the weights: an error naming the mismatch.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["infer", "--model", "resnet18", "--weights"])
        .arg(&sf)
        .arg("--input")
        .arg(&input_path)
        .arg("--output")
        .arg(scratch("never.safetensors"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("layer1.0.conv3.weight"), "{err}");
}
