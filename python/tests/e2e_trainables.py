"""Tiny pure-Python trainables for the end-to-end tests (a module file, imported by them)."""

import os
import time

import poptune


class Quadratic(poptune.Trainable):
    """Gradient steps on -(x - 3)^2; `sleep` in h (seconds) slows each step; `fail_at` in h
    raises at that step of member 0's first life (a file marks it done)."""

    def __init__(self, member):
        super().__init__(member)
        self.x = 0.0
        self.steps = 0

    def step(self, h):
        self.steps += 1
        if h.get("sleep"):
            time.sleep(h["sleep"])
        fail_at = h.get("fail_at", 0)
        if fail_at and self.member == 0 and self.steps == fail_at:
            marker = os.path.join(os.environ["E2E_MARKERS"], "failed-once")
            if not os.path.exists(marker):
                open(marker, "w").close()
                raise RuntimeError("failing on purpose at step %d" % self.steps)
        self.x += h["lr"] * (3.0 - self.x)
        return -(self.x - 3.0) ** 2, {"x": self.x}

    def save(self, directory):
        with open(os.path.join(directory, "state"), "w") as f:
            f.write("%r %d" % (self.x, self.steps))

    def load(self, directory):
        with open(os.path.join(directory, "state")) as f:
            x, steps = f.read().split()
        self.x, self.steps = float(x), int(steps)
