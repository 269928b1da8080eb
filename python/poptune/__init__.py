"""poptune: Population Based Training from Python.

    import poptune

    class MyTrainable(poptune.Trainable):
        def __init__(self, member): ...       # fresh state for population member `member`
        def step(self, h): ...                # one training step with hyperparameters h
        def save(self, directory): ...        # the full training state, into directory
        def load(self, directory): ...        # ... and back

    exp = poptune.Experiment(name="demo", population=8,
                             space={"lr": poptune.loguniform(1e-4, 1e-1)},
                             stop=poptune.Stop(steps=100))
    result = exp.run(MyTrainable)             # drives the `poptune` binary
    result.best, result.steps, result.dataframe()

The protocol helper (`Trainable`, `serve`) is imported at once and costs nothing beyond
json, math, sys and time, so a trainable process starts fast; the experiment API is imported
on first use. See docs/python.md.
"""

from ._protocol import PROTOCOL, Trainable, serve

__version__ = "0.1.0"

# name -> submodule that defines it (imported on first use: PEP 562)
_LAZY = {
    "ConfigError": "_errors",
    "PoptuneError": "_errors",
    "RunError": "_errors",
    "Param": "_space",
    "uniform": "_space",
    "loguniform": "_space",
    "randint": "_space",
    "ordered": "_space",
    "choice": "_space",
    "fixed": "_space",
    "Policy": "_experiment",
    "Fire": "_experiment",
    "Exploit": "_experiment",
    "Explore": "_experiment",
    "truncation": "_experiment",
    "tournament": "_experiment",
    "t_test": "_experiment",
    "winner_takes_all": "_experiment",
    "perturb": "_experiment",
    "gaussian": "_experiment",
    "resample": "_experiment",
    "Stop": "_experiment",
    "Plateau": "_experiment",
    "Experiment": "_experiment",
    "Result": "_result",
    "Member": "_result",
    "Fault": "_result",
    "load": "_result",
    "find_binary": "_binary",
}

__all__ = ["PROTOCOL", "Trainable", "serve", "__version__"] + sorted(_LAZY)


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError("module 'poptune' has no attribute %r" % name)
    import importlib

    value = getattr(importlib.import_module("." + module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
