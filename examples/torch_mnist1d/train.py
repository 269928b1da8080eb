"""A PyTorch trainable for poptune: the MNIST-1D paper's 1D CNN (the network of the burn
example, crates/poptune-burn/src/model.rs), trained by SGD with momentum and weight decay.

- Data: crates/poptune-burn/data/mnist1d.csv.gz, the file the repository ships (read with gzip
  and numpy, nothing is downloaded). Of its 5,000 rows, the first 4,000 are shuffled by
  `np.random.default_rng(0).permutation(4000)`: the first 3,500 of that order are the training
  split, the next 500 the validation split; rows 4,000..4,999 are the test split. (The same
  sizes and the same rule as the burn example's split, not its exact rows: Rust shuffles with
  another generator.)
- Network: three Conv1d layers of 32 channels (kernels 5, 3, 3; stride 2, padding 1; ReLU),
  dropout, then a Linear layer to the 10 classes: 8,010 parameters.
- A step: 1,024 training examples (1024 / batch_size updates), then the validation accuracy,
  which is the score. Metrics: train_loss and step_seconds (the time inside step(), which
  tune.py adds up to measure poptune's overhead).
- Hyperparameters: lr, momentum, weight_decay, dropout, batch_size.
- Determinism: each member's weights come from its own seed; dropout draws from the member's
  own torch.Generator and the data order from its own numpy Generator. A checkpoint holds the
  model's and the optimiser's state_dict, both generators' states, the epoch's order and the
  position in it: loading it and training on gives the very numbers that training on without
  the round trip gives, so `poptune replay DIR` reports `identical` (on CPU: one thread per
  process and torch.use_deterministic_algorithms(True)).
- Device: the binary says which devices a slot gets in POPTUNE_DEVICES (`cpu`, or GPU ids,
  also set as CUDA_VISIBLE_DEVICES): CUDA when it gives GPUs and torch sees one, else the CPU.

Tuned by tune.py; the class alone is `poptune.Experiment(...).run(Mnist1dCnn)`.
"""

import gzip
import json
import os
import sys
import time

_IMPORT_BEGAN = time.perf_counter()
# Deterministic cuBLAS (CUDA only; must be set before CUDA starts).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import numpy as np
import torch
from torch import nn

import poptune

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "crates", "poptune-burn", "data", "mnist1d.csv.gz")
EXAMPLES_PER_STEP = 1024
CLASSES = 10

# One thread per trainable process: poptune runs one process per slot (2 slots on 2 cores),
# and a single thread makes every float sum come out in the same order.
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
torch.backends.cudnn.benchmark = False


def load_splits(path=DATA):
    """(x, y) for train, validation and test: float32 sequences of 40, int64 labels."""
    with gzip.open(path, "rt") as f:
        raw = np.loadtxt(f, delimiter=",", skiprows=1, dtype=np.float32)
    x, y = raw[:, :-1], raw[:, -1].astype(np.int64)
    order = np.random.default_rng(0).permutation(4000)
    rows = {"train": order[:3500], "valid": order[3500:], "test": np.arange(4000, len(y))}
    return {k: (torch.from_numpy(x[r].copy()), torch.from_numpy(y[r].copy())) for k, r in rows.items()}


SPLITS = load_splits()


def _since_process_start():
    """Seconds since this process started (Linux; else since this module began importing)."""
    try:
        with open("/proc/self/stat") as f:
            started = int(f.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime") as f:
            return float(f.read().split()[0]) - started
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORT_BEGAN


# In the slot's log (logs/slot-N.stderr.log), when poptune started this process (it always
# sets POPTUNE_DEVICES): tune.py adds these up as the start-up cost.
if "POPTUNE_DEVICES" in os.environ:
    print("train.py: ready %.3f s after the process started (torch %s)"
          % (_since_process_start(), torch.__version__), file=sys.stderr, flush=True)


def device():
    """The device poptune gave this process."""
    given = os.environ.get("POPTUNE_DEVICES", "cpu")
    if given != "cpu" and torch.cuda.is_available():
        return torch.device("cuda")  # the first of CUDA_VISIBLE_DEVICES, which poptune set
    return torch.device("cpu")


class Cnn1d(nn.Module):
    """Three strided convolutions and a linear layer; dropout before the last."""

    def __init__(self, length=40, channels=32, classes=CLASSES):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, channels, 5, stride=2, padding=1), nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
        )
        out = length
        for k in (5, 3, 3):
            out = (out + 2 - k) // 2 + 1
        self.output = nn.Linear(channels * out, classes)

    def forward(self, x, dropout=0.0, generator=None):
        h = self.features(x.unsqueeze(1)).flatten(1)
        if self.training and dropout > 0.0:
            # Dropout from the member's own generator, not torch's global one.
            keep = torch.rand(h.shape, device=h.device, generator=generator) >= dropout
            h = h * keep / (1.0 - dropout)
        return self.output(h)


def accuracy(model, split, dev):
    x, y = split
    model.eval()
    with torch.no_grad():
        predicted = model(x.to(dev)).argmax(1).cpu()
    model.train()
    return float((predicted == y).float().mean())


class Mnist1dCnn(poptune.Trainable):
    def __init__(self, member):
        super().__init__(member)
        self.dev = device()
        # The experiment's seed (tune.py passes it in the environment) and the member's id.
        s = int(os.environ.get("MNIST1D_SEED", "0")) * 1_000_003 + member
        torch.manual_seed(s)  # the initial weights
        self.model = Cnn1d().to(self.dev)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01)
        self.gen = torch.Generator(device=self.dev)
        self.gen.manual_seed(s + 1)  # dropout
        self.rng = np.random.default_rng(s + 2)  # the data order
        self.order = self.rng.permutation(len(SPLITS["train"][1]))
        self.cursor = 0  # the next example of this epoch's order
        self.steps = 0
        self.valid = tuple(t.to(self.dev) for t in SPLITS["valid"])
        self.train_x, self.train_y = (t.to(self.dev) for t in SPLITS["train"])

    def batch(self, size):
        if self.cursor + size > len(self.order):  # a new epoch (the last partial batch is dropped)
            self.order = self.rng.permutation(len(self.order))
            self.cursor = 0
        idx = torch.from_numpy(self.order[self.cursor:self.cursor + size]).to(self.dev)
        self.cursor += size
        return self.train_x[idx], self.train_y[idx]

    def step(self, h):
        began = time.perf_counter()
        batch = int(h["batch_size"])
        p = float(h["dropout"])
        for group in self.opt.param_groups:
            group.update(lr=float(h["lr"]), momentum=float(h["momentum"]),
                         weight_decay=float(h["weight_decay"]))
        loss_sum = torch.zeros((), device=self.dev)
        updates = max(1, EXAMPLES_PER_STEP // batch)
        for _ in range(updates):
            x, y = self.batch(batch)
            loss = nn.functional.cross_entropy(self.model(x, p, self.gen), y)
            self.opt.zero_grad(set_to_none=False)
            loss.backward()
            self.opt.step()
            loss_sum += loss.detach()
        self.steps += 1
        score = accuracy(self.model, self.valid, self.dev)
        # A diverged model scores what its predictions are worth, so PBT replaces it.
        return score, {"train_loss": float(loss_sum) / updates,
                       "step_seconds": time.perf_counter() - began}

    def save(self, directory):
        torch.save({"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                    "dropout_rng": self.gen.get_state(), "order": torch.from_numpy(self.order)},
                   os.path.join(directory, "state.pt"))
        with open(os.path.join(directory, "meta.json"), "w") as f:
            json.dump({"data_rng": self.rng.bit_generator.state, "cursor": self.cursor,
                       "steps": self.steps}, f)

    def load(self, directory):
        state = torch.load(os.path.join(directory, "state.pt"), map_location=self.dev,
                           weights_only=True)
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.gen.set_state(state["dropout_rng"].cpu())
        self.order = state["order"].cpu().numpy()
        with open(os.path.join(directory, "meta.json")) as f:
            meta = json.load(f)
        self.rng.bit_generator.state = meta["data_rng"]
        self.cursor, self.steps = meta["cursor"], meta["steps"]

    def test_accuracy(self):
        return accuracy(self.model, SPLITS["test"], self.dev)


if __name__ == "__main__":
    poptune.serve(Mnist1dCnn)
