"""Where the slot time of a tune.py run goes: runs PBT with a traced trainable (train.py's,
writing a timestamp line to its slot's log around every step, save, load and new member
object) and splits wall time x slots (exp.run from its call to its return) into: inside steps;
saving and loading checkpoints; making a fresh member object before a load (`__init__`);
starting the processes (Python, torch, the data); between the steps of a segment (a step's
answer line, the next call); between segments (from the `saved` line to the next request's
first call: the binary's bookkeeping, the protocol);
before a process starts (the binary starting, opening the experiment); after a slot's last
segment, split into waiting for the other slot's last segment, winding down (the processes
exiting, the binary closing) and exp.run reading the results back; and whatever is left (a
process restarted after a fault would be there).

    python examples/torch_mnist1d/overhead.py                        # 12 members x 150 steps
    python examples/torch_mnist1d/overhead.py --population 8 --steps 60
"""

import argparse
import glob
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import train  # noqa: E402
import tune  # noqa: E402

import poptune._run  # noqa: E402

# When the binary exited (exp.run then reads the results back).
_EXITED = []
_drive = poptune._run.drive


def _timed_drive(*args, **kwargs):
    out = _drive(*args, **kwargs)
    _EXITED.append(time.time())
    return out


poptune._run.drive = _timed_drive


def _mark(kind, member, began):
    print("trace %s %d %.6f %.6f" % (kind, member, began, time.time()), file=sys.stderr, flush=True)


if "POPTUNE_DEVICES" in os.environ:  # in a slot's process: when it starts shutting down
    import atexit

    atexit.register(lambda: _mark("exit", -1, time.time()))


class Traced(train.Mnist1dCnn):
    def __init__(self, member):
        t = time.time()
        super().__init__(member)
        _mark("init", member, t)

    def step(self, h):
        t = time.time()
        out = super().step(h)
        _mark("step", self.member, t)
        return out

    def save(self, directory):
        t = time.time()
        super().save(directory)
        _mark("save", self.member, t)

    def load(self, directory):
        t = time.time()
        super().load(directory)
        _mark("load", self.member, t)


def breakdown(directory, began, ended, slots, exited=None):
    exited = ended if exited is None else exited
    total = (ended - began) * slots
    parts = {"steps": 0.0, "save+load": 0.0, "new objects": 0.0, "start-up": 0.0,
             "between steps": 0.0, "between segments": 0.0, "before start-up": 0.0,
             "other slot's last": 0.0, "winding down": 0.0, "results read": 0.0}
    lasts, exits = [], []
    for log in sorted(glob.glob(os.path.join(directory, "logs", "slot-*.stderr.log"))):
        events, startup = [], 0.0
        with open(log) as f:
            for line in f:
                p = line.split()
                if p[:2] == ["trace", "exit"]:
                    exits.append(float(p[3]))
                elif p[:1] == ["trace"]:
                    events.append((p[1], float(p[3]), float(p[4])))
                elif line.startswith("train.py: ready"):
                    startup += float(p[2])
        if not events:
            continue
        parts["start-up"] += startup
        parts["before start-up"] += events[0][1] - began - startup
        lasts.append(events[-1][2])
        for kind, a, b in events:
            parts[{"step": "steps", "init": "new objects"}.get(kind, "save+load")] += b - a
        for (k, _, b), (k2, a, _) in zip(events, events[1:]):
            if k == "init":  # an object's load follows at once; that gap is the load's call
                parts["new objects"] += a - b
            elif k == "step" and k2 == "step":
                parts["between steps"] += a - b
            else:
                parts["between segments"] += a - b
    if lasts:
        parts["other slot's last"] = sum(max(lasts) - t for t in lasts)
        parts["winding down"] = (exited - max(lasts)) * len(lasts)
        parts["results read"] = (ended - exited) * len(lasts)
    if exits:  # the processes' atexit handlers, after the last segment ended
        print("processes shutting down (atexit) %.2f s after the last segment ended, the binary "
              "exited %.2f s after that" % (max(exits) - max(lasts), exited - max(exits)))
    parts["idle slots (rest)"] = total - sum(parts.values())
    return total, parts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--population", type=int, default=12)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--interval", type=int, default=10)
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dir", default="results/torch-overhead")
    a = ap.parse_args()
    shutil.rmtree(a.dir, ignore_errors=True)
    exp = tune.experiment(method="pbt", seed=a.seed, directory=a.dir, population=a.population,
                          steps=a.steps, interval=a.interval, slots=a.slots)
    began = time.time()
    result = exp.run(Traced, quiet=True)
    ended = time.time()
    total, parts = breakdown(exp.path, began, ended, a.slots, _EXITED[-1] if _EXITED else None)
    print("%d member-steps, %.1f s x %d slots = %.1f slot-seconds (load average before: %s)"
          % (result.compute, ended - began, a.slots, total, LOAD))
    for k, v in parts.items():
        print("  %-18s %7.2f s  %6.2f%%" % (k, v, 100 * v / total))
    outside = total - parts["steps"]
    print("outside training steps: %.2f%%; without start-up: %.2f%%" % (
        100 * outside / total, 100 * (outside - parts["start-up"]) / (total - parts["start-up"])))


LOAD = open("/proc/loadavg").read().split()[0] if os.path.exists("/proc/loadavg") else "?"

if __name__ == "__main__":
    main()
