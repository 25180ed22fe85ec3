"""Writes tests/conformance/onnx_training/: ONNX training-operator cases
(Adam, Momentum, Adagrad of the domain ai.onnx.preview.training) at update
counts T > 0, where bias correction, dampening and learning-rate decay act.
The ONNX backend suite's own cases all have T = 0.

Expected values come from onnx's reference evaluator
(`onnx.reference.ReferenceEvaluator`) run on a one-node model, and each is
checked here against a float64 evaluation of the operator text's formula
(within 5 % of the case's tolerance), so neither a float32 rounding nor a
slip in the node's wiring lands in a fixture.

    python -m venv .venv && .venv/bin/pip install -r scripts/conformance/requirements.txt
    .venv/bin/python scripts/conformance/onnx_training_cases.py

The file format is tests/conformance/FORMAT.md.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import onnx
from onnx import helper, TensorProto
from onnx.reference import ReferenceEvaluator
from safetensors.numpy import save_file

OUT = pathlib.Path(__file__).resolve().parents[2] / "tests/conformance/onnx_training"
DOMAIN = "ai.onnx.preview.training"
RTOL, ATOL = 1e-4, 1e-5

# Per op: the attributes and their schema defaults, the state lists after X
# and G, and the outputs' name suffixes.
OPS = {
    "Adam": {
        "defaults": {
            "alpha": 0.9,
            "beta": 0.999,
            "epsilon": 1e-6,
            "norm_coefficient": 0.0,
            "norm_coefficient_post": 0.0,
        },
        "states": ["V", "H"],
    },
    "Momentum": {"defaults": {}, "states": ["V"]},
    "Adagrad": {
        "defaults": {"decay_factor": 0.0, "epsilon": 1e-6, "norm_coefficient": 0.0},
        "states": ["H"],
    },
}

# name, op, R, T, attributes, shapes of the tensors updated together.
CASES = [
    ("kiln_adam_t1", "Adam", 0.1, 1,
     {"alpha": 0.95, "beta": 0.85, "epsilon": 1e-2}, [[3], [2, 2]]),
    ("kiln_adam_t3_keras_betas_l2", "Adam", 0.01, 3,
     {"alpha": 0.9, "beta": 0.999, "epsilon": 1e-7, "norm_coefficient": 0.01},
     [[3, 4], [5]]),
    ("kiln_adam_t7_post_decay", "Adam", 0.01, 7,
     {"alpha": 0.9, "beta": 0.99, "epsilon": 1e-7, "norm_coefficient_post": 0.05},
     [[4]]),
    ("kiln_momentum_t1_dampened", "Momentum", 0.1, 1,
     {"alpha": 0.9, "beta": 0.8, "mode": "standard", "norm_coefficient": 0.0},
     [[6]]),
    ("kiln_momentum_t5_dampened_l2", "Momentum", 0.05, 5,
     {"alpha": 0.9, "beta": 0.7, "mode": "standard", "norm_coefficient": 0.01},
     [[3, 4], [5]]),
    ("kiln_nesterov_t2", "Momentum", 0.05, 2,
     {"alpha": 0.9, "beta": 1.0, "mode": "nesterov", "norm_coefficient": 0.0},
     [[2, 3]]),
    ("kiln_nesterov_t4_dampened_l2", "Momentum", 0.05, 4,
     {"alpha": 0.8, "beta": 0.6, "mode": "nesterov", "norm_coefficient": 0.02},
     [[7]]),
    ("kiln_adagrad_t4_decay_l2", "Adagrad", 0.1, 4,
     {"decay_factor": 0.1, "epsilon": 1e-5, "norm_coefficient": 0.001},
     [[3, 4], [5]]),
    ("kiln_adagrad_t9", "Adagrad", 0.5, 9,
     {"decay_factor": 0.3, "epsilon": 1e-6}, [[4]]),
]


def f64_update(op, attrs, r, t, x, g, states):
    """The operator text's update in float64: new X then new states."""
    a = {**OPS[op]["defaults"], **attrs}
    g = g + a.get("norm_coefficient", 0.0) * x
    if op == "Adam":
        v, h = states
        v = a["alpha"] * v + (1 - a["alpha"]) * g
        h = a["beta"] * h + (1 - a["beta"]) * g * g
        rate = r * np.sqrt(1 - a["beta"] ** t) / (1 - a["alpha"] ** t) if t > 0 else r
        x = (1 - a["norm_coefficient_post"]) * (x - rate * v / (np.sqrt(h) + a["epsilon"]))
        return [x, v, h]
    if op == "Momentum":
        (v,) = states
        v = a["alpha"] * v + (a["beta"] if t > 0 else 1.0) * g
        step = g + a["alpha"] * v if a["mode"] == "nesterov" else v
        return [x - r * step, v]
    (h,) = states
    h = h + g * g
    return [x - r / (1 + t * a["decay_factor"]) * g / (np.sqrt(h) + a["epsilon"]), h]


def case(name, op, r, t, attrs, shapes, rng):
    n = len(shapes)
    states = OPS[op]["states"]
    # Input names: R, T, X1…, G1…, then each state list.
    lists = ["X", "G"] + states
    names = {k: [f"{k}{i + 1}" if n > 1 else k for i in range(n)] for k in lists}
    data = {"R": np.array(r, np.float32), "T": np.array(t, np.int64)}
    for i, shape in enumerate(shapes):
        data[names["X"][i]] = rng.standard_normal(shape).astype(np.float32)
        data[names["G"][i]] = rng.standard_normal(shape).astype(np.float32)
        for s in states:
            # V: a running mean of gradients; H: non-negative sums of squares.
            v = rng.standard_normal(shape) * 0.3
            data[names[s][i]] = (np.abs(v) if s == "H" else v).astype(np.float32)
    inputs = ["R", "T"] + [nm for k in lists for nm in names[k]]
    outputs = [f"{nm}_new" for k in ["X"] + states for nm in names[k]]
    all_attrs = {**OPS[op]["defaults"], **attrs}
    node = helper.make_node(op, inputs, outputs, domain=DOMAIN, **all_attrs)
    info = lambda nm, arr: helper.make_tensor_value_info(
        nm, TensorProto.INT64 if arr.dtype == np.int64 else TensorProto.FLOAT, arr.shape
    )
    graph = helper.make_graph(
        [node], name, [info(nm, data[nm]) for nm in inputs],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid(DOMAIN, 1)]
    )
    got = ReferenceEvaluator(model).run(None, {k: data[k] for k in inputs})

    exact = []
    for i in range(n):
        f = lambda k: data[names[k][i]].astype(np.float64)
        exact.append(f64_update(op, attrs, float(r), t, f("X"), f("G"), [f(s) for s in states]))
    # outputs are grouped by list (X…, then each state), exact by tensor.
    for j, o in enumerate(outputs):
        want = exact[j % n][j // n]
        err = np.abs(got[j].astype(np.float64) - want) - 0.05 * (ATOL + RTOL * np.abs(want))
        assert (err <= 0).all(), f"{name} {o}: the reference is not within 5 % of the tolerance"
        data[o] = np.asarray(got[j], np.float32)

    meta = {
        "op": op,
        "opset": "1",
        "attrs": json.dumps(all_attrs),
        "inputs": json.dumps(inputs),
        "outputs": json.dumps(outputs),
        "rtol": str(RTOL),
        "atol": str(ATOL),
        "source": (
            f"onnx {onnx.__version__} reference evaluator, operator {op} (domain {DOMAIN}) "
            f"opset 1, T = {t}; written by scripts/conformance/onnx_training_cases.py"
        ),
    }
    save_file({k: np.ascontiguousarray(v) for k, v in data.items()}, OUT / f"{name}.safetensors", meta)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261203)
    for c in CASES:
        case(*c, rng)
        print("wrote", c[0])


if __name__ == "__main__":
    main()
