"""Reads an event directory with TensorBoard's own reader and writes what it
read as JSON: the offline reference for kiln's event writer
(tests/tensorboard.rs).

The fixture's event file is written by kiln: run
`cargo test --release --test tensorboard -- --nocapture`, which prints the
path of the file it wrote, and copy that file to tests/fixtures/tensorboard/.
Then:

    python -m venv .venv && .venv/bin/pip install -r scripts/tensorboard/requirements.txt
    .venv/bin/python scripts/tensorboard/read_events.py tests/fixtures/tensorboard \
        > tests/fixtures/tensorboard/read_by_tensorboard.json
"""

from __future__ import annotations

import json
import sys

import tensorboard
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main(directory: str) -> None:
    acc = EventAccumulator(directory, size_guidance={"scalars": 0})
    acc.Reload()
    scalars = {
        tag: [
            {"step": e.step, "value": e.value, "wall_time": e.wall_time}
            for e in acc.Scalars(tag)
        ]
        for tag in sorted(acc.Tags()["scalars"])
    }
    out = {
        "reader": f"tensorboard {tensorboard.__version__} EventAccumulator",
        "file_version": acc.file_version,
        "scalars": scalars,
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
