"""Writes tests/conformance/onnx_recurrent/: GRU and RNN cases the ONNX
backend suite lacks. Its GRU cases all have `linear_before_reset = 0`, while
PyTorch's GRU and Keras' default (`reset_after=True`) apply the reset gate
after the recurrent product, which is `linear_before_reset = 1`; and none
has a batch, a bias and an initial state at once.

Expected values come from onnx's reference evaluator
(`onnx.reference.ReferenceEvaluator`) on a one-node model, run twice: on the
float32 inputs the case stores and on the same values in float64. The two
must agree within 5 % of the case's tolerance, so a float32 rounding in the
reference does not land in a fixture; the float64 result is stored.

    python -m venv .venv && .venv/bin/pip install -r scripts/conformance/requirements.txt
    .venv/bin/python scripts/conformance/onnx_recurrent_cases.py

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

OUT = pathlib.Path(__file__).resolve().parents[2] / "tests/conformance/onnx_recurrent"
RTOL, ATOL = 1e-4, 1e-5
GATES = {"GRU": 3, "RNN": 1}
ACTIVATIONS = {"GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}

# name, op, seq, batch, input, hidden, extra attributes, with bias, with h0.
CASES = [
    ("kiln_gru_reset_after_bias_h0", "GRU", 5, 3, 4, 6, {"linear_before_reset": 1}, True, True),
    ("kiln_gru_reset_after_no_bias", "GRU", 4, 2, 3, 5, {"linear_before_reset": 1}, False, False),
    ("kiln_gru_reset_before_bias_h0", "GRU", 4, 3, 2, 4, {"linear_before_reset": 0}, True, True),
    ("kiln_rnn_bias_h0", "RNN", 6, 2, 3, 5, {}, True, True),
]


def model(name, op, attrs, inputs, data):
    node = helper.make_node(op, inputs, ["Y", "Y_h"], **attrs)
    info = lambda nm, arr: helper.make_tensor_value_info(
        nm, TensorProto.DOUBLE if arr.dtype == np.float64 else TensorProto.FLOAT, arr.shape
    )
    graph = helper.make_graph(
        [node], name, [info(nm, data[nm]) for nm in inputs if nm],
        [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in ["Y", "Y_h"]],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])


def case(name, op, seq, batch, inp, hidden, extra, bias, h0, rng):
    g = GATES[op]
    data = {
        "X": rng.standard_normal([seq, batch, inp]),
        "W": rng.standard_normal([1, g * hidden, inp]) * 0.5,
        "R": rng.standard_normal([1, g * hidden, hidden]) * 0.5,
    }
    if bias:
        data["B"] = rng.standard_normal([1, 2 * g * hidden]) * 0.5
    if h0:
        data["initial_h"] = rng.standard_normal([1, batch, hidden]) * 0.5
    data = {k: v.astype(np.float32) for k, v in data.items()}
    # Slots: X, W, R, B, sequence_lens, initial_h.
    inputs = ["X", "W", "R", "B" if bias else "", "", "initial_h" if h0 else ""]
    while inputs[-1] == "":
        inputs.pop()
    attrs = {
        "activations": ACTIVATIONS[op],
        "direction": "forward",
        "hidden_size": hidden,
        "layout": 0,
        **extra,
    }
    run = lambda d: ReferenceEvaluator(model(name, op, attrs, inputs, d)).run(
        None, {k: d[k] for k in inputs if k}
    )
    single = run(data)
    double = run({k: v.astype(np.float64) for k, v in data.items()})
    for o, s, d in zip(["Y", "Y_h"], single, double):
        err = np.abs(s.astype(np.float64) - d) - 0.05 * (ATOL + RTOL * np.abs(d))
        assert (err <= 0).all(), f"{name} {o}: float32 and float64 references disagree"
        data[o] = np.asarray(d, np.float32)

    meta = {
        "op": op,
        "opset": "22",
        "attrs": json.dumps(attrs),
        "inputs": json.dumps([nm or None for nm in inputs]),
        "outputs": json.dumps(["Y", "Y_h"]),
        "rtol": str(RTOL),
        "atol": str(ATOL),
        "source": (
            f"onnx {onnx.__version__} reference evaluator, operator {op} opset 22, in float64; "
            "written by scripts/conformance/onnx_recurrent_cases.py"
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
