"""Tunes the PyTorch MNIST-1D CNN (train.py) with poptune: PBT, or random search at the same
compute (the same members, never exploited or explored: variant "frozen", initial "prior", as
`poptune-burn compare` runs it).

    python examples/torch_mnist1d/tune.py --method pbt --seed 1 --dir results/torch-mnist1d
    python examples/torch_mnist1d/tune.py --method random --seed 1 --dir results/torch-mnist1d-random

At the end it loads the best member's checkpoint, measures its test accuracy (once, not the
score) and the share of slot time spent outside training steps, prints them and writes them to
DIR/torch_result.json. Running the same command again continues (or just re-reads) the run.
"""

import argparse
import glob
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import poptune
from train import Mnist1dCnn  # noqa: E402 (imports torch)

SPACE = {
    "lr": poptune.loguniform(0.001, 0.3),
    "momentum": poptune.uniform(0.5, 0.99),
    "weight_decay": poptune.loguniform(1e-6, 1e-2),
    "dropout": poptune.uniform(0.0, 0.5),
    "batch_size": poptune.ordered([16, 32, 64, 128]),
}


def experiment(method="pbt", seed=1, directory="results/torch-mnist1d", population=12,
               steps=150, interval=10, slots=2, gpus_per_slot=0):
    variant = {"pbt": "pbt", "random": "frozen"}[method]
    return poptune.Experiment(
        name=os.path.basename(os.path.normpath(directory)),
        directory=directory,
        population=population,
        space=SPACE,
        metric="val_accuracy",
        policy=poptune.Policy(interval=interval, exploit=poptune.truncation(0.25),
                              explore=poptune.perturb([0.8, 1.2], resample_probability=0.25),
                              variant=variant),
        stop=poptune.Stop(steps=steps),
        initial="prior",
        seed=seed,
        slots=slots,
        gpus_per_slot=gpus_per_slot,
        env={"MNIST1D_SEED": str(seed), "OMP_NUM_THREADS": "1"},
    )


def startup_seconds(directory):
    """Seconds the trainable processes spent starting (Python, torch, the data), from the
    lines train.py writes into the slots' logs."""
    total = 0.0
    for log in glob.glob(os.path.join(directory, "logs", "slot-*.stderr.log")):
        with open(log, errors="replace") as f:
            for line in f:
                m = re.match(r"train\.py: ready ([0-9.]+) s after", line)
                if m:
                    total += float(m.group(1))
    return total


def tune(quiet=False, **kwargs):
    """Runs (or continues, or re-reads) one experiment; returns its Result and a summary,
    also written to DIR/torch_result.json."""
    exp = experiment(**kwargs)
    saved = os.path.join(exp.path, "torch_result.json")
    before = None
    if os.path.exists(saved):
        with open(saved) as f:
            before = json.load(f)
    began = time.monotonic()
    result = exp.run(Mnist1dCnn, quiet=quiet)
    wall = time.monotonic() - began
    if result.best is None:
        raise SystemExit("no member has a checkpoint yet")
    if before is not None and before.get("compute") == result.compute:
        wall = before["wall_seconds"]  # nothing was trained now: keep the run's own timing
    elif before is not None and result.compute > before.get("compute", 0):
        wall += before.get("wall_seconds", 0.0)  # a continued run: the calls' times add up
    best = Mnist1dCnn(result.best.member)
    best.load(result.checkpoint)
    step_seconds = sum(s.get("step_seconds") or 0.0 for s in result.steps)
    startup = startup_seconds(exp.path)
    slot_seconds = wall * exp.slots
    summary = {
        "method": kwargs.get("method", "pbt"),
        "seed": kwargs.get("seed", 1),
        "state": result.state,
        "best_member": result.best.member,
        "val_accuracy": result.best.score,
        "test_accuracy": best.test_accuracy(),
        "compute": result.compute,
        "slots": exp.slots,
        # Wall time of exp.run (the binary's start to its exit) x slots, against the time the
        # trainable spent inside step(): the share of slot time outside training steps.
        "wall_seconds": wall,
        "step_seconds": step_seconds,
        "overhead": 1.0 - step_seconds / slot_seconds,
        # Of which: starting the trainable processes (Python, torch, the data), all together;
        # and the share of the rest of the slot time that is not inside steps.
        "startup_seconds": startup,
        "overhead_after_startup": 1.0 - step_seconds / (slot_seconds - startup),
        "device": str(best.dev),
    }
    with open(saved, "w") as f:
        json.dump(summary, f, indent=1)
    return result, summary


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", choices=["pbt", "random"], default="pbt")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dir", default="results/torch-mnist1d")
    ap.add_argument("--population", type=int, default=12)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--interval", type=int, default=10)
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--gpus-per-slot", type=float, default=None,
                    help="GPUs per slot (default: 1/slots when torch sees a GPU, else 0: the CPU)")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    gps = a.gpus_per_slot
    if gps is None:
        import torch
        gps = 1.0 / a.slots if torch.cuda.is_available() else 0
    if gps == int(gps):
        gps = int(gps)
    result, s = tune(quiet=a.quiet, method=a.method, seed=a.seed, directory=a.dir,
                     population=a.population, steps=a.steps, interval=a.interval,
                     slots=a.slots, gpus_per_slot=gps)
    print(result)
    print("best member %d: validation accuracy %.4f, test accuracy %.4f" % (
        s["best_member"], s["val_accuracy"], s["test_accuracy"]))
    print("compute %d member-steps; %.1f s x %d slots, %.1f s inside steps: %.2f%% of slot "
          "time outside them; %.1f s of it starting the processes, %.2f%% without that" % (
              s["compute"], s["wall_seconds"], s["slots"], s["step_seconds"],
              100 * s["overhead"], s["startup_seconds"], 100 * s["overhead_after_startup"]))
    print("schedule of the best member:")
    for seg in result.schedule:
        print("  steps %d-%d: %s" % (seg.start + 1, seg.end, seg.h))


if __name__ == "__main__":
    main()
