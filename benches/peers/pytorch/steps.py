"""The four training steps of kiln's benches, timed in PyTorch.

Same models, batches and optimizers as `cargo bench --bench train_step`,
`cnn_step`, `lstm_step` and `resnet_step`:

- the tutorial MLP at batch 64 (30 -> 128 relu -> BN -> dropout 0.3 -> 64
  relu -> BN -> dropout 0.2 -> 1 sigmoid; Adam, binary cross-entropy);
- SimpleCNN at batch 64 on 3x32x32 (Adam, cross-entropy from logits);
- the LSTM forecaster at batch 32 x 10 x 3 (LSTM 50 relu, sequences ->
  LSTM 50 relu -> Dense 1; Adam, MSE). torch.nn.LSTM has no relu, so the
  cell is written out, as Keras runs it;
- ResNet-50 at batch 8 on 3x64x64, 10 classes, PyTorch's Adam: the head
  alone (backbone frozen, batch norm in train mode) and full fine-tuning.

For each: the cold first step (model built, first step finished, from
process start for the first model) and the warm median of several runs.
Install: `pip install -r requirements.txt` (torch 2.5.1, torchvision 0.20.1;
PyPI's wheels run on the CPU too, the CPU-only ones at
https://download.pytorch.org/whl/cpu are smaller).
Run: `python3 steps.py [--device cpu|cuda] [--threads N]`.
"""

import argparse
import json
import statistics
import time

START = time.perf_counter()

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torchvision  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


class ReluLSTM(nn.Module):
    """Keras' LSTM(units, activation='relu'): gates i, f, c, o; sigmoid
    recurrent activation; relu on the cell input and the output."""

    def __init__(self, inputs, units, return_sequences):
        super().__init__()
        self.kernel = nn.Linear(inputs, 4 * units)
        self.recurrent = nn.Linear(units, 4 * units, bias=False)
        self.units = units
        self.return_sequences = return_sequences

    def forward(self, x):
        n, t, _ = x.shape
        projected = self.kernel(x)
        h = x.new_zeros(n, self.units)
        c = x.new_zeros(n, self.units)
        outputs = []
        for step in range(t):
            z = projected[:, step] + self.recurrent(h)
            i, f, g, o = z.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.relu(g)
            h = torch.sigmoid(o) * torch.relu(c)
            outputs.append(h)
        return torch.stack(outputs, 1) if self.return_sequences else h


class Forecaster(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm1 = ReluLSTM(3, 50, True)
        self.lstm2 = ReluLSTM(50, 50, False)
        self.dense = nn.Linear(50, 1)

    def forward(self, x):
        return self.dense(self.lstm2(self.lstm1(x)))


def simple_cnn(classes=10):
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, 512), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(512, classes),
    )


def mlp():
    return nn.Sequential(
        nn.Linear(30, 128), nn.ReLU(), nn.BatchNorm1d(128, momentum=0.01, eps=1e-3), nn.Dropout(0.3),
        nn.Linear(128, 64), nn.ReLU(), nn.BatchNorm1d(64, momentum=0.01, eps=1e-3), nn.Dropout(0.2),
        nn.Linear(64, 1), nn.Sigmoid(),
    )


def resnet(frozen):
    net = torchvision.models.resnet50(weights=None)
    if frozen:
        for p in net.parameters():
            p.requires_grad = False
    net.fc = nn.Linear(2048, 10)
    return net


def cases(device):
    g = torch.Generator().manual_seed(7)
    rand = lambda *s: (torch.rand(*s, generator=g) * 2 - 1).to(device)
    yield ("tutorial MLP, b64", mlp, rand(64, 30),
           (torch.arange(64) % 2).float().unsqueeze(1).to(device), nn.BCELoss(),
           lambda p: torch.optim.Adam(p, lr=1e-3, eps=1e-7), 50)
    yield ("SimpleCNN, b64, 3x32x32", simple_cnn, rand(64, 3, 32, 32),
           (torch.arange(64) % 10).to(device), nn.CrossEntropyLoss(),
           lambda p: torch.optim.Adam(p, lr=1e-3), 5)
    yield ("LSTM forecaster, b32x10x3", Forecaster, rand(32, 10, 3),
           rand(32, 1), nn.MSELoss(), lambda p: torch.optim.Adam(p, lr=1e-3, eps=1e-7), 20)
    yield ("ResNet-50 head only, b8, 64x64", lambda: resnet(True), rand(8, 3, 64, 64),
           (torch.arange(8) % 10).to(device), nn.CrossEntropyLoss(),
           lambda p: torch.optim.Adam(p, lr=1e-3), 2)
    yield ("ResNet-50 full fine-tune, b8, 64x64", lambda: resnet(False), rand(8, 3, 64, 64),
           (torch.arange(8) % 10).to(device), nn.CrossEntropyLoss(),
           lambda p: torch.optim.Adam(p, lr=1e-3), 2)


def matmul_gflops(device, n):
    """SGEMM n x n x n (TF32 off): the GFLOP/s kiln's matmul bench compares with."""
    a = torch.rand(n, n, device=device)
    b = torch.rand(n, n, device=device)
    torch.mm(a, b)
    sync(device)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: default)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--matmul", type=int, default=0, help="also time an N^3 SGEMM (0: skip)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device(args.device)
    results = []
    first = True
    for name, build, x, y, loss_fn, make_opt, per_run in cases(device):
        cold_start = START if first else time.perf_counter()
        first = False
        torch.manual_seed(1)
        model = build().to(device).train()
        opt = make_opt([p for p in model.parameters() if p.requires_grad])

        def step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()

        step()
        sync(device)
        cold = time.perf_counter() - cold_start
        for _ in range(2):
            step()
        sync(device)
        times = []
        for _ in range(args.runs):
            t = time.perf_counter()
            for _ in range(per_run):
                step()
            sync(device)
            times.append((time.perf_counter() - t) / per_run)
        row = {"model": name, "warm_ms": statistics.median(times) * 1e3, "cold_s": cold}
        results.append(row)
        print(f"{name:<38} warm {row['warm_ms']:10.3f} ms   cold {cold:7.2f} s", flush=True)
    summary = {"device": str(device), "torch": torch.__version__,
               "threads": torch.get_num_threads(), "results": results}
    if args.matmul:
        summary["matmul_gflops"] = matmul_gflops(device, args.matmul)
        print(f"SGEMM {args.matmul}^3 (TF32 off): {summary['matmul_gflops']:.0f} GFLOP/s")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
