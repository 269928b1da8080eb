"""Softmax regression on the UCI digits, trained by minibatch SGD with momentum and weight
decay: a complete poptune trainable that needs only numpy.

One step is one epoch over the training split; the score is the validation accuracy.
Splits are fixed (seeded permutation): 60% train, 20% validation, 20% test.
Run it through poptune: `poptune run examples/digits/experiment.toml`.
"""

import gzip
import json
import os

import numpy as np

import poptune  # the package (pip install ./python); experiment.toml also points
                # PYTHONPATH at the checkout's python/ folder

HERE = os.path.dirname(os.path.abspath(__file__))

DATA = os.path.join(HERE, "..", "data", "digits.csv.gz")


def load_splits():
    with gzip.open(DATA, "rt") as f:
        raw = np.loadtxt(f, delimiter=",", skiprows=1)
    x = raw[:, :-1] / 16.0
    y = raw[:, -1].astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    a, b = int(0.6 * len(y)), int(0.8 * len(y))
    return (x[:a], y[:a]), (x[a:b], y[a:b]), (x[b:], y[b:])


TRAIN, VALID, TEST = load_splits()
CLASSES = 10


def accuracy(w, b, data):
    x, y = data
    return float(np.mean(np.argmax(x @ w + b, axis=1) == y))


class Digits(poptune.Trainable):
    def __init__(self, member):
        super().__init__(member)
        self.rng = np.random.default_rng(1000 + member)
        self.w = self.rng.normal(0.0, 0.01, size=(TRAIN[0].shape[1], CLASSES))
        self.b = np.zeros(CLASSES)
        self.vw = np.zeros_like(self.w)
        self.vb = np.zeros_like(self.b)

    def step(self, h):
        lr, mom, wd = float(h["lr"]), float(h["momentum"]), float(h["weight_decay"])
        batch = int(h["batch_size"])
        x, y = TRAIN
        order = self.rng.permutation(len(y))
        loss = 0.0
        for i in range(0, len(y), batch):
            idx = order[i:i + batch]
            xb, yb = x[idx], y[idx]
            logits = xb @ self.w + self.b
            logits -= logits.max(axis=1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(axis=1, keepdims=True)
            loss += -np.log(p[np.arange(len(yb)), yb] + 1e-12).sum()
            p[np.arange(len(yb)), yb] -= 1.0
            gw = xb.T @ p / len(yb) + wd * self.w
            gb = p.mean(axis=0)
            self.vw = mom * self.vw - lr * gw
            self.vb = mom * self.vb - lr * gb
            self.w += self.vw
            self.b += self.vb
        return accuracy(self.w, self.b, VALID), {
            "train_loss": loss / len(y),
            "test_accuracy": accuracy(self.w, self.b, TEST),
        }

    def save(self, directory):
        np.savez(os.path.join(directory, "state.npz"), w=self.w, b=self.b, vw=self.vw, vb=self.vb)
        with open(os.path.join(directory, "rng.json"), "w") as f:
            json.dump(self.rng.bit_generator.state, f)

    def load(self, directory):
        with np.load(os.path.join(directory, "state.npz")) as z:
            self.w, self.b, self.vw, self.vb = z["w"], z["b"], z["vw"], z["vb"]
        with open(os.path.join(directory, "rng.json")) as f:
            self.rng.bit_generator.state = json.load(f)


if __name__ == "__main__":
    poptune.serve(Digits)
