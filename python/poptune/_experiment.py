"""An experiment described in Python: everything the experiment file can say
(docs/experiment-file.md), checked here with messages as clear as the file's, written as the
file, and run by the `poptune` binary."""

import math
import os
import re

from . import _toml
from ._errors import ConfigError, bad
from ._space import check_space

MAX_STEPS = 2 ** 53
MAX_POPULATION = 100_000
MAX_SLOTS = 10_000
MAX_SECONDS = 1e9
_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


def _whole(arg, x, low, high, what, example):
    if isinstance(x, bool) or not isinstance(x, int):
        if isinstance(x, float) and x.is_integer():
            raise bad(arg, x, "%s: a whole number (write %d, not %r)" % (what, int(x), x), example)
        raise bad(arg, x, "%s: a whole number" % what, example)
    if x < low or (high is not None and x > high):
        rng = "%d or more" % low if high is None else "from %d to %d" % (low, high)
        raise bad(arg, x, "%s, %s" % (what, rng), example)
    return x


def _number(arg, x, what, example, low=None, high=None, low_open=False, high_open=False):
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise bad(arg, x, "%s: a number" % what, example)
    x = float(x)
    if not math.isfinite(x):
        raise bad(arg, x, "%s: a finite number (not NaN or infinity)" % what, example)
    if low is not None and (x < low or (low_open and x == low)):
        raise bad(arg, x, what, example)
    if high is not None and (x > high or (high_open and x == high)):
        raise bad(arg, x, what, example)
    return x


def _word(arg, x, words, example):
    if x not in words:
        raise bad(arg, x, "one of %s" % ", ".join(repr(w) for w in words), example)
    return x


# ---- exploit and explore ---------------------------------------------------------------------


class Exploit:
    """How a ready member picks a donor: `truncation`, `tournament`, `t_test`,
    `winner_takes_all`."""

    def __init__(self, strategy, **options):
        self.strategy = strategy
        self.options = options

    def entries(self):
        return [("strategy", self.strategy)] + list(self.options.items())

    def __repr__(self):
        return "poptune.%s(%s)" % (self.strategy, ", ".join("%s=%r" % kv for kv in self.options.items()))

    def __eq__(self, other):
        return isinstance(other, Exploit) and (self.strategy, self.options) == (other.strategy, other.options)


def truncation(fraction=0.25):
    """The bottom ceil(N*fraction) (at most N/2) copy a random member of the top as many."""
    return Exploit("truncation", fraction=_number(
        "truncation(fraction)", fraction, "the fraction lies in (0, 1]: above 0 and at most 1",
        "poptune.truncation(0.25)", low=0.0, high=1.0, low_open=True))


def tournament():
    """Binary tournament: compare with a random other member, copy it if better."""
    return Exploit("tournament")


def t_test(window=10, alpha=0.05):
    """Welch's t-test over the last `window` step scores, at significance `alpha`."""
    ex = "poptune.t_test(window=10, alpha=0.05)"
    w = _whole("t_test(window)", window, 2, MAX_STEPS, "the t-test compares at least 2 scores per member", ex)
    a = _number("t_test(alpha)", alpha, "a significance level in (0, 1)", ex,
                low=0.0, high=1.0, low_open=True, high_open=True)
    return Exploit("t_test", window=w, alpha=a)


def winner_takes_all():
    """Every member but the best copies the best."""
    return Exploit("winner_takes_all")


class Explore:
    """How a member that exploited changes its hyperparameters: `perturb`, `gaussian`,
    `resample`."""

    def __init__(self, method, **options):
        self.method = method
        self.options = options

    def entries(self):
        return [("method", self.method)] + list(self.options.items())

    def __repr__(self):
        return "poptune.%s(%s)" % (self.method, ", ".join("%s=%r" % kv for kv in self.options.items()))

    def __eq__(self, other):
        return isinstance(other, Explore) and (self.method, self.options) == (other.method, other.options)


def _probability(fn, p):
    return _number(fn + "(resample_probability)", p, "a probability from 0 to 1",
                   "poptune.%s(resample_probability=0.25)" % fn, low=0.0, high=1.0)


def perturb(factors=(0.8, 1.2), resample_probability=0.25):
    """Multiply each value by one of `factors` (ordered values move to a neighbour); with
    probability `resample_probability` draw it from the prior instead."""
    ex = "poptune.perturb([0.8, 1.2])"
    if isinstance(factors, (str, bytes)) or not hasattr(factors, "__iter__"):
        raise bad("perturb(factors)", factors, "a list of positive numbers", ex)
    factors = list(factors)
    if not factors:
        raise bad("perturb(factors)", factors, "the list is empty; give at least one factor", ex)
    out = []
    for i, f in enumerate(factors):
        out.append(_number("perturb(factors[%d])" % i, f,
                           "each factor is a positive finite number (it multiplies a value)",
                           ex, low=0.0, low_open=True))
    return Explore("perturb", factors=out,
                   resample_probability=_probability("perturb", resample_probability))


def gaussian(std, resample_probability=0.0):
    """Add Gaussian noise of standard deviation `std` (relative to each range), clamped."""
    s = _number("gaussian(std)", std, "a standard deviation, 0 or more", "poptune.gaussian(0.1)", low=0.0)
    return Explore("gaussian", std=s, resample_probability=_probability("gaussian", resample_probability))


def resample(resample_probability=1.0):
    """Draw values from the prior."""
    return Explore("resample", resample_probability=_probability("resample", resample_probability))


# ---- policy and stop rules ---------------------------------------------------------------------


class Policy:
    """When members are ready and what they do then: the `[policy]` table.

    interval: ready every `interval` steps; burn_in: ... once this many are done;
    exploit: truncation(0.25) (default), tournament(), t_test(...), winner_takes_all();
    explore: perturb([0.8, 1.2]) (default), gaussian(std), resample();
    sync: False (asynchronous, default) or True (everyone decides from the same snapshot);
    inherit: "weights+hyperparameters" (default) or "weights";
    variant: "pbt" (default), "explore-only", "exploit-only", "frozen";
    algorithm: "pbt" (default), "pb2", "pb2-mix", or "fire" / poptune.Fire(...) (FIRE-PBT with
    its sub-populations and evaluators; "fire" splits the population by default).
    """

    def __init__(self, interval=5, burn_in=0, exploit=None, explore=None, sync=False,
                 inherit="weights+hyperparameters", variant="pbt", algorithm="pbt"):
        self.interval = _whole("Policy(interval)", interval, 1, MAX_STEPS,
                               "members train at least 1 step between ready points", "Policy(interval=5)")
        self.burn_in = _whole("Policy(burn_in)", burn_in, 0, MAX_STEPS,
                              "steps trained before the first ready point", "Policy(burn_in=10)")
        exploit = truncation() if exploit is None else exploit
        if not isinstance(exploit, Exploit):
            raise bad("Policy(exploit)", exploit, "poptune.truncation(...), tournament(), "
                      "t_test(...) or winner_takes_all()", "Policy(exploit=poptune.truncation(0.25))")
        explore = perturb() if explore is None else explore
        if not isinstance(explore, Explore):
            raise bad("Policy(explore)", explore, "poptune.perturb(...), gaussian(std) or resample()",
                      "Policy(explore=poptune.perturb([0.8, 1.2]))")
        self.exploit, self.explore = exploit, explore
        if sync in ("synchronous", "asynchronous"):
            sync = sync == "synchronous"
        if not isinstance(sync, bool):
            raise bad("Policy(sync)", sync, "True (synchronous) or False (asynchronous)", "Policy(sync=True)")
        self.sync = sync
        self.inherit = _word("Policy(inherit)", inherit, ("weights+hyperparameters", "weights"),
                             'Policy(inherit="weights")')
        self.variant = _word("Policy(variant)", variant, ("pbt", "explore-only", "exploit-only", "frozen"),
                             'Policy(variant="explore-only")')
        if isinstance(algorithm, Fire):
            self.algorithm, self.fire = "fire", algorithm
        else:
            self.algorithm = _word("Policy(algorithm)", algorithm, ("pbt", "pb2", "pb2-mix", "fire"),
                                   'Policy(algorithm="pb2")')
            self.fire = None

    def __repr__(self):
        alg = self.fire if self.fire is not None else self.algorithm
        return ("poptune.Policy(interval=%r, burn_in=%r, exploit=%r, explore=%r, sync=%r, inherit=%r, "
                "variant=%r, algorithm=%r)" % (self.interval, self.burn_in, self.exploit, self.explore,
                                               self.sync, self.inherit, self.variant, alg))


class Fire:
    """FIRE-PBT's settings: the `[policy.fire]` table. `sub_populations`: the sizes of P1 (ranked
    by score), P2, ... (ranked by improvement rate), 2 or more each; `evaluators`: how many
    members evaluate the higher sub-populations; the population must be their sum.
    `p_value`: the binomial test's level (0.01); `max_eval_steps`: steps before a losing
    evaluation is stopped (50); `smoothing`: points of the curves' moving average (5)."""

    def __init__(self, sub_populations, evaluators, p_value=0.01, max_eval_steps=50, smoothing=5):
        ex = "poptune.Fire(sub_populations=[4, 4], evaluators=4)"
        if (not isinstance(sub_populations, (list, tuple)) or len(sub_populations) < 2):
            raise bad("Fire(sub_populations)", sub_populations,
                      "a list of two or more sub-population sizes", ex)
        self.sub_populations = [
            _whole("Fire(sub_populations)", n, 2, MAX_POPULATION, "a sub-population of 2 or more members", ex)
            for n in sub_populations]
        self.evaluators = _whole("Fire(evaluators)", evaluators, 1, MAX_POPULATION, "1 or more evaluators", ex)
        self.p_value = _number("Fire(p_value)", p_value, "a test's level between 0 and 1",
                               "poptune.Fire([4, 4], 4, p_value=0.01)", low=0.0, high=1.0,
                               low_open=True, high_open=True)
        self.max_eval_steps = _whole("Fire(max_eval_steps)", max_eval_steps, 1, MAX_STEPS,
                                     "steps, 1 or more", "poptune.Fire([4, 4], 4, max_eval_steps=50)")
        self.smoothing = _whole("Fire(smoothing)", smoothing, 1, 1000, "points, from 1 to 1000",
                                "poptune.Fire([4, 4], 4, smoothing=5)")

    @property
    def members(self):
        return sum(self.sub_populations) + self.evaluators

    def entries(self):
        return [("sub_populations", self.sub_populations), ("evaluators", self.evaluators),
                ("p_value", self.p_value), ("max_eval_steps", self.max_eval_steps),
                ("smoothing", self.smoothing)]

    def __repr__(self):
        return ("poptune.Fire(sub_populations=%r, evaluators=%r, p_value=%r, max_eval_steps=%r, "
                "smoothing=%r)" % (self.sub_populations, self.evaluators, self.p_value,
                                   self.max_eval_steps, self.smoothing))


class Plateau:
    """Stop when the best score has not improved by `min_delta` during `patience` steps."""

    def __init__(self, patience, min_delta=0.0):
        ex = "poptune.Plateau(patience=20, min_delta=0.001)"
        self.patience = _whole("Plateau(patience)", patience, 1, MAX_STEPS,
                               "steps without improvement before the experiment stops", ex)
        self.min_delta = _number("Plateau(min_delta)", min_delta,
                                 "the least improvement that counts, 0 or more", ex, low=0.0)

    def __repr__(self):
        return "poptune.Plateau(patience=%r, min_delta=%r)" % (self.patience, self.min_delta)


class Stop:
    """When the experiment ends: the `[stop]` table. `steps` (required): steps each member
    trains; `target`: stop when a member's score reaches it; `max_seconds`: stop starting
    segments after this long; `plateau`: Plateau(patience, min_delta), or a dict, or a whole
    number (the patience)."""

    def __init__(self, steps, target=None, max_seconds=None, plateau=None):
        self.steps = _whole("Stop(steps)", steps, 1, MAX_STEPS, "the steps each member trains",
                            "Stop(steps=100)")
        self.target = None if target is None else _number(
            "Stop(target)", target, "the score at which to stop", "Stop(steps=100, target=0.99)")
        self.max_seconds = None if max_seconds is None else _number(
            "Stop(max_seconds)", max_seconds, "a positive number of seconds, at most 1e9",
            "Stop(steps=100, max_seconds=3600)", low=0.0, high=MAX_SECONDS, low_open=True)
        if plateau is None or isinstance(plateau, Plateau):
            self.plateau = plateau
        elif isinstance(plateau, dict):
            unknown = set(plateau) - {"patience", "min_delta"}
            if unknown or "patience" not in plateau:
                raise bad("Stop(plateau)", plateau, "a dict with `patience` and optionally `min_delta`",
                          'Stop(steps=100, plateau={"patience": 20, "min_delta": 0.001})')
            self.plateau = Plateau(**plateau)
        elif isinstance(plateau, int) and not isinstance(plateau, bool):
            self.plateau = Plateau(plateau)
        else:
            raise bad("Stop(plateau)", plateau, "poptune.Plateau(patience, min_delta), a dict, or "
                      "the patience as a whole number", "Stop(steps=100, plateau=poptune.Plateau(20, 0.001))")
        if self.plateau is not None and self.plateau.patience > self.steps:
            raise bad("Plateau(patience)", self.plateau.patience,
                      "at most Stop(steps) = %d: a longer patience could never fire" % self.steps,
                      "poptune.Plateau(patience=%d)" % max(1, self.steps // 5))

    def __repr__(self):
        return "poptune.Stop(steps=%r, target=%r, max_seconds=%r, plateau=%r)" % (
            self.steps, self.target, self.max_seconds, self.plateau)


def check_gpus_per_slot(g):
    """GPUs per slot: 0 (none assigned), a whole number, or a fraction 1/n (n slots share a
    GPU), as the file's rule has it."""
    what = ("0 (no GPUs assigned), a whole number of GPUs, or a fraction that divides one GPU "
            "evenly (0.5, 0.25, 1/3: that many slots share a GPU)")
    ex = "gpus_per_slot=1, or gpus_per_slot=0.5 for two slots on each GPU"
    if isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g) or g < 0:
        raise bad("gpus_per_slot", g, what, ex)
    eps = 1e-9
    if g >= 1 and abs(g - round(g)) > eps:
        raise bad("gpus_per_slot", g, what, ex)
    if 0 < g < 1 and abs(1 / g - round(1 / g)) > eps * (1 / g):
        raise bad("gpus_per_slot", g, what, ex)
    return int(g) if isinstance(g, int) else float(g)


def check_devices(devices):
    """The GPU ids slots are given (default: every GPU the machine has): strings or whole
    numbers, each once."""
    if devices is None:
        return None
    ex = 'devices=["0", "1"] or devices=[0, 1]'
    if isinstance(devices, (str, bytes)) or not hasattr(devices, "__iter__"):
        raise bad("devices", devices, "a list of device ids", ex)
    out = []
    for i, d in enumerate(devices):
        if isinstance(d, int) and not isinstance(d, bool) and d >= 0:
            d = str(d)
        if not isinstance(d, str) or not d.strip() or "," in d or "\x00" in d:
            raise bad("devices[%d]" % i, d, "a device id: a string (no ',' or NUL) or a whole "
                      "number 0 or more", ex)
        d = d.strip()
        if d in out:
            raise bad("devices[%d]" % i, d, "each device is listed once (a fractional "
                      "gpus_per_slot puts several slots on one device)", ex)
        out.append(d)
    return out


def check_name(name):
    """The experiment's name, as the file's rule has it."""
    rule = ("a name uses only ASCII letters, digits, '-', '_' and '.' (it names the experiment's "
            "folder), is not '.' or '..', and has at most 255 bytes")
    if not isinstance(name, str):
        raise bad("name", name, rule, 'name="digits-lr"')
    if not name or not _NAME.match(name) or name in (".", "..") or len(name) > 255:
        suggestion = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:255] or "exp"
        if suggestion in (".", ".."):
            suggestion = "exp"
        raise bad("name", name, rule, "name=%r" % suggestion)
    return name


class Experiment:
    """A PBT experiment: what the experiment file says, in Python (docs/python.md).

    Required: name, population, space and stop. `run(...)` writes the file into the experiment
    directory (`directory`, default ./NAME) and runs it with the `poptune` binary; running the
    same experiment again continues it.
    """

    def __init__(self, name, population, space, stop, metric="score", mode="max", policy=None,
                 slots=1, gpus_per_slot=0, directory=None, seed=0, initial="prior",
                 step_timeout=600, max_failures=3, env=None, cwd=None, devices=None):
        self.name = check_name(name)
        self.population = _whole("population", population, 1, MAX_POPULATION,
                                 "the number of members (PBT needs 2 or more to compare)", "population=8")
        self.space = check_space(space)
        if isinstance(stop, int) and not isinstance(stop, bool):
            stop = Stop(stop)
        if not isinstance(stop, Stop):
            raise bad("stop", stop, "poptune.Stop(steps=...) (or the steps as a whole number)",
                      "stop=poptune.Stop(steps=100)")
        self.stop = stop
        if not isinstance(metric, str) or not metric.strip():
            raise bad("metric", metric, "the score's name, a non-blank string", 'metric="val_accuracy"')
        self.metric = metric
        self.mode = _word("mode", mode, ("max", "min"), 'mode="min"')
        policy = Policy() if policy is None else policy
        if not isinstance(policy, Policy):
            raise bad("policy", policy, "poptune.Policy(...)", "policy=poptune.Policy(interval=5)")
        self.policy = policy
        self.slots = _whole("slots", slots, 1, MAX_SLOTS, "trainable processes run in parallel", "slots=4")
        self.gpus_per_slot = check_gpus_per_slot(gpus_per_slot)
        self.devices = check_devices(devices)
        if directory is not None and not isinstance(directory, (str, os.PathLike)):
            raise bad("directory", directory, "a folder's path (str or pathlib.Path)",
                      'directory="runs/%s"' % self.name)
        self.directory = None if directory is None else os.fspath(directory)
        if isinstance(self.directory, bytes) or self.directory == "":
            raise bad("directory", directory, "a folder's path as text", 'directory="runs/%s"' % self.name)
        self.seed = _whole("seed", seed, 0, 2 ** 63 - 1, "the seed of every random choice", "seed=1")
        self.initial = _word("initial", initial, ("prior", "grid"), 'initial="grid"')
        self.step_timeout = _number("step_timeout", step_timeout,
                                    "a positive number of seconds, at most 1e9", "step_timeout=60",
                                    low=0.0, high=MAX_SECONDS, low_open=True)
        self.max_failures = _whole("max_failures", max_failures, 0, 2 ** 32 - 1,
                                   "faults in a row before a member is replaced", "max_failures=3")
        env = {} if env is None else env
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise bad("env", env, "a dict of environment variable names to string values",
                      'env={"OMP_NUM_THREADS": "1"}')
        for k, v in env.items():
            if not k or "=" in k or "\x00" in k or "\x00" in v:
                raise bad("env", {k: v}, "a variable's name is non-empty without '=' or NUL, and "
                          "its value has no NUL", 'env={"OMP_NUM_THREADS": "1"}')
        self.env = dict(env)
        if cwd is not None and not isinstance(cwd, (str, os.PathLike)):
            raise bad("cwd", cwd, "a folder's path", 'cwd="."')
        self.cwd = None if cwd is None else os.fspath(cwd)
        self._check_against_steps()

    def _check_against_steps(self):
        steps, p = self.stop.steps, self.policy
        if p.fire is not None and p.fire.members != self.population:
            raise bad("population", self.population,
                      "the sum of Fire's sub_populations %r and its %d evaluators (%d)"
                      % (p.fire.sub_populations, p.fire.evaluators, p.fire.members),
                      "population=%d" % p.fire.members)
        if p.variant != "frozen":
            if p.interval > steps:
                raise bad("Policy(interval)", p.interval,
                          "at most Stop(steps) = %d: with a longer interval no member is ever ready "
                          "to exploit or explore (or use variant=\"frozen\")" % steps,
                          "Policy(interval=%d)" % max(1, min(5, steps)))
            if p.burn_in >= steps:
                raise bad("Policy(burn_in)", p.burn_in,
                          "less than Stop(steps) = %d: members must be ready at least once" % steps,
                          "Policy(burn_in=%d)" % (steps // 2))
        w = p.exploit.options.get("window")
        if w is not None and w > steps:
            raise bad("t_test(window)", w, "at most Stop(steps) = %d: a window of more scores could "
                      "never be filled" % steps, "poptune.t_test(window=%d)" % max(2, min(10, steps)))

    @property
    def path(self):
        """The experiment directory (absolute): `directory`, or ./NAME."""
        return os.path.abspath(self.directory if self.directory is not None else self.name)

    def to_toml(self, command, cwd=None):
        """The experiment file for trainable `command` (a list of strings), as text."""
        if cwd is None:
            cwd = self.cwd if self.cwd is not None else os.getcwd()
        p, s = self.policy, self.stop
        out = [
            "# The experiment file of a poptune.Experiment (written by Python: docs/python.md).",
            "# Running the same Experiment again, or `poptune run` on this file, continues it.",
            _toml.table(None, [
                ("name", self.name), ("metric", self.metric), ("mode", self.mode),
                ("population", self.population), ("seed", self.seed), ("slots", self.slots),
                ("initial", self.initial),
                ("directory", self.path),
            ]),
            "",
            _toml.table(["policy"], [
                ("interval", p.interval), ("burn_in", p.burn_in),
                ("sync", "synchronous" if p.sync else "asynchronous"),
                ("inherit", p.inherit), ("variant", p.variant),
                ("algorithm", None if p.algorithm == "pbt" else p.algorithm),
            ]),
            "",
            _toml.table(["policy", "exploit"], p.exploit.entries()),
            "",
            _toml.table(["policy", "explore"], p.explore.entries()),
        ]
        if p.fire is not None:
            out += ["", _toml.table(["policy", "fire"], p.fire.entries())]
        for name, param in self.space.items():
            out += ["", _toml.table(["space", name], param.table())]
        plateau = None
        if s.plateau is not None:
            plateau = {"patience": s.plateau.patience, "min_delta": s.plateau.min_delta}
        out += ["", _toml.table(["stop"], [("steps", s.steps), ("target", s.target),
                                           ("max_seconds", s.max_seconds), ("plateau", plateau)])]
        out += ["", _toml.table(["trainable"], [
            ("command", list(command)), ("cwd", os.path.abspath(cwd)),
            ("env", self.env or None), ("step_timeout", self.step_timeout),
            ("max_failures", self.max_failures), ("gpus_per_slot", self.gpus_per_slot or None),
            ("devices", self.devices),
        ])]
        return "\n".join(out) + "\n"

    def run(self, trainable=None, *, command=None, quiet=False, store=None):
        """Runs (or continues) the experiment and returns its `Result`.

        trainable: a `poptune.Trainable` subclass defined in a .py file (or imported from one),
        or "path/to/script.py:ClassName", or "package.module:ClassName";
        command: instead, any program speaking the protocol, as a list (["./train", "--fast"]);
        quiet: no progress output; store: a postgres:// URL to keep the experiment in
        PostgreSQL (docs/distributed.md). Ctrl-C stops the run cleanly (KeyboardInterrupt is
        raised once the binary has recorded what was trained); run again to continue.
        """
        from ._run import run_experiment

        return run_experiment(self, trainable, command, quiet, store)

    def __repr__(self):
        return "poptune.Experiment(name=%r, population=%r, space=%r, stop=%r, policy=%r)" % (
            self.name, self.population, self.space, self.stop, self.policy)
