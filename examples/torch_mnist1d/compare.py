"""PBT against random search at equal compute, over several seeds, for the PyTorch MNIST-1D CNN:
each run is tune.py's, in results/torch-compare/METHOD-sSEED (a finished run is re-read, not
trained again; delete its folder to start over). Prints the tables of docs/results.md.

    python examples/torch_mnist1d/compare.py --seeds 3                       # 12 members x 150 steps
    python examples/torch_mnist1d/compare.py --seeds 3 --population 8 --steps 60 --out results/small
"""

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tune  # noqa: E402


def mean_sd(xs):
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--methods", default="pbt,random")
    ap.add_argument("--population", type=int, default=12)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--interval", type=int, default=10)
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--out", default="results/torch-compare")
    a = ap.parse_args()
    methods = a.methods.split(",")
    runs = {}
    for seed in range(1, a.seeds + 1):
        for method in methods:
            d = os.path.join(a.out, "%s-s%d" % (method, seed))
            _, s = tune.tune(quiet=True, method=method, seed=seed, directory=d,
                             population=a.population, steps=a.steps, interval=a.interval,
                             slots=a.slots)
            runs[method, seed] = s
            print("%s seed %d: test %.4f, validation %.4f, %d member-steps, %.1f s, "
                  "overhead %.2f%%" % (method, seed, s["test_accuracy"], s["val_accuracy"],
                                        s["compute"], s["wall_seconds"], 100 * s["overhead"]),
                  flush=True)
    print()
    print("| method | test accuracy (mean ± sd) | min | max | validation accuracy (mean) "
          "| compute (member-steps, mean) | seconds (mean) | outside steps (mean) "
          "| of which start-up (mean) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for method in methods:
        rs = [runs[method, s] for s in range(1, a.seeds + 1)]
        test = [r["test_accuracy"] for r in rs]
        m, sd = mean_sd(test)
        print("| %s | %.4f ± %.4f | %.4f | %.4f | %.4f | %.0f | %.1f | %.2f%% | %.1f s |" % (
            method, m, sd, min(test), max(test), statistics.mean(r["val_accuracy"] for r in rs),
            statistics.mean(r["compute"] for r in rs),
            statistics.mean(r["wall_seconds"] for r in rs),
            100 * statistics.mean(r["overhead"] for r in rs),
            statistics.mean(r["startup_seconds"] for r in rs)))
    print()
    print("| seed | " + " | ".join(methods) + " |")
    print("|---:|" + "---:|" * len(methods))
    for seed in range(1, a.seeds + 1):
        print("| %d | " % seed + " | ".join(
            "%.3f (%d)" % (runs[m, seed]["test_accuracy"], runs[m, seed]["compute"]) for m in methods) + " |")


if __name__ == "__main__":
    main()
