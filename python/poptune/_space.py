"""Search spaces: one `Param` per hyperparameter, made by the functions below. They are the
`[space.NAME]` tables of the experiment file (docs/experiment-file.md)."""

import math

from ._errors import ConfigError, bad

MAX_INT = 2 ** 53


class Param:
    """One hyperparameter's prior and moves. Make it with `uniform`, `loguniform`, `randint`,
    `ordered`, `choice` or `fixed`."""

    __slots__ = ("kind", "low", "high", "log", "values", "value")

    def __init__(self, kind, low=None, high=None, log=False, values=None, value=None):
        self.kind = kind
        self.low = low
        self.high = high
        self.log = log
        self.values = values
        self.value = value

    def table(self):
        """The `[space.NAME]` entries, in the file's order."""
        if self.kind in ("float", "int"):
            return [("type", self.kind), ("low", self.low), ("high", self.high),
                    ("log", True if self.log else None)]
        if self.kind == "fixed":
            return [("type", "fixed"), ("value", self.value)]
        return [("type", self.kind), ("values", list(self.values))]

    def __repr__(self):
        if self.kind == "float":
            return "poptune.%s(%r, %r)" % ("loguniform" if self.log else "uniform", self.low, self.high)
        if self.kind == "int":
            return "poptune.randint(%r, %r%s)" % (self.low, self.high, ", log=True" if self.log else "")
        if self.kind == "fixed":
            return "poptune.fixed(%r)" % (self.value,)
        return "poptune.%s(%r)" % ("ordered" if self.kind == "ordered" else "choice", list(self.values))

    def __eq__(self, other):
        return isinstance(other, Param) and all(
            getattr(self, s) == getattr(other, s) for s in self.__slots__)

    __hash__ = None


def _real(fn, arg, x, example):
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise bad("%s(%s)" % (fn, arg), x, "a number is needed", example)
    x = float(x)
    if not math.isfinite(x):
        raise bad("%s(%s)" % (fn, arg), x, "bounds must be finite numbers", example)
    return x


def uniform(low, high):
    """A real number in [low, high], uniform prior; explore multiplies or adds noise and
    clamps into the bounds."""
    ex = "poptune.uniform(0.0, 0.1)"
    lo, hi = _real("uniform", "low", low, ex), _real("uniform", "high", high, ex)
    if lo >= hi:
        raise ConfigError("uniform(low=%r, high=%r): low must be smaller than high; swap them, or "
                          "use poptune.fixed(%r) for a value that never changes; e.g. %s"
                          % (low, high, low, ex), "uniform")
    return Param("float", lo, hi, False)


def loguniform(low, high):
    """A positive real number in [low, high], log-uniform prior and multiplicative moves."""
    ex = "poptune.loguniform(1e-4, 1e-1)"
    lo, hi = _real("loguniform", "low", low, ex), _real("loguniform", "high", high, ex)
    if lo <= 0:
        raise ConfigError("loguniform(low=%r, high=%r): a log-uniform range needs low > 0 (a "
                          "positive lower bound such as 1e-6), or use poptune.uniform; e.g. %s"
                          % (low, high, ex), "loguniform")
    if lo >= hi:
        raise ConfigError("loguniform(low=%r, high=%r): low must be smaller than high; swap "
                          "them; e.g. %s" % (low, high, ex), "loguniform")
    return Param("float", lo, hi, True)


def randint(low, high, log=False):
    """A whole number from low to high, both included (unlike Ray Tune's randint, whose upper
    bound is excluded); `log=True` for a log-uniform prior (low >= 1)."""
    ex = "poptune.randint(1, 4)"
    for arg, x in (("low", low), ("high", high)):
        if isinstance(x, bool) or not isinstance(x, int):
            if isinstance(x, float) and x.is_integer():
                raise bad("randint(%s)" % arg, x, "a whole number is needed (write %d, not %r)"
                          % (int(x), x), ex)
            raise bad("randint(%s)" % arg, x, "a whole number is needed", ex)
        if not -MAX_INT <= x <= MAX_INT:
            raise bad("randint(%s)" % arg, x, "whole numbers within +-2**53 only", ex)
    if not isinstance(log, bool):
        raise bad("randint(log)", log, "True or False", "poptune.randint(1, 64, log=True)")
    if low >= high:
        raise ConfigError("randint(low=%r, high=%r): low must be smaller than high; swap them, "
                          "or use poptune.fixed(%r); e.g. %s" % (low, high, low, ex), "randint")
    if log and low < 1:
        raise ConfigError("randint(low=%r, high=%r, log=True): a log-uniform integer range needs "
                          "low >= 1; e.g. poptune.randint(1, 64, log=True)" % (low, high), "randint")
    return Param("int", low, high, log)


def _scalar(fn, where, x, example):
    """A value a hyperparameter can take: bool, whole number, finite number or string."""
    if isinstance(x, bool) or isinstance(x, str):
        return x
    if isinstance(x, int):
        if not -(2 ** 63) <= x < 2 ** 63:
            raise bad(fn + where, x, "whole numbers must fit in 64 bits", example)
        return x
    if isinstance(x, float):
        if not math.isfinite(x):
            raise bad(fn + where, x, "values must be finite numbers", example)
        return x
    raise bad(fn + where, x, "a value is a number, a string or a boolean (%s is a %s)"
              % (_short(x), type(x).__name__), example)


def _short(x):
    t = repr(x)
    return t if len(t) <= 40 else t[:37] + "..."


def _kind(x):
    return {bool: "a boolean", int: "a whole number", float: "a decimal number",
            str: "a string"}[type(x)]


def _values(fn, values, example):
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
        raise bad(fn + "(values)", values, "a list of values is needed", example)
    values = [_scalar(fn, "(values[%d])" % i, v, example) for i, v in enumerate(values)]
    if not values:
        raise bad(fn + "(values)", values, "the list is empty; give at least one value", example)
    for i, v in enumerate(values):
        if type(v) is not type(values[0]):
            raise ConfigError(
                "%s(values): element %d (%r) is %s but element 1 (%r) is %s: a list of mixed "
                "types is almost surely a typo; e.g. %s"
                % (fn, i + 1, v, _kind(v), values[0], _kind(values[0]), example), fn)
        if v in values[:i]:
            raise ConfigError("%s(values): value %r is listed twice (at positions %d and %d); "
                              "list each value once; e.g. %s"
                              % (fn, v, values.index(v) + 1, i + 1, example), fn)
    return tuple(values)


def ordered(values):
    """Ordered choices: explore moves to a neighbour (e.g. batch sizes)."""
    return Param("ordered", values=_values("ordered", values, "poptune.ordered([16, 32, 64])"))


def choice(values):
    """Unordered categories: explore resamples."""
    return Param("choice", values=_values("choice", values, 'poptune.choice(["relu", "tanh"])'))


def fixed(value):
    """A value that never changes."""
    return Param("fixed", value=_scalar("fixed", "(value)", value, "poptune.fixed(3)"))


def check_space(space):
    """The `space` argument: a non-empty dict of name -> Param (a plain number, string or
    boolean is a fixed value). Returns a new dict."""
    ex = 'space={"lr": poptune.loguniform(1e-4, 1e-1), "batch": poptune.ordered([16, 32, 64])}'
    if not isinstance(space, dict):
        raise bad("space", space, "a dict of hyperparameter name -> poptune.uniform(...), "
                  "loguniform, randint, ordered, choice or fixed", ex)
    if not space:
        raise bad("space", space, "the search space is empty: give at least one hyperparameter", ex)
    out = {}
    for name, p in space.items():
        if not isinstance(name, str) or not name.strip():
            raise bad("space", name, "each hyperparameter needs a name, a non-blank string", ex)
        if "\x00" in name:
            raise bad("space", name, "a hyperparameter name cannot hold NUL", ex)
        if isinstance(p, Param):
            out[name] = p
        elif isinstance(p, (list, tuple)):
            raise bad("space[%r]" % name, p, "a list is ambiguous: say poptune.ordered(...) "
                      "(explore moves to a neighbour) or poptune.choice(...) (explore resamples)",
                      "space={%r: poptune.choice(%r)}" % (name, list(p)))
        else:
            try:
                out[name] = fixed(p)
            except ConfigError:
                raise bad("space[%r]" % name, p, "a hyperparameter is poptune.uniform(...), "
                          "loguniform, randint, ordered, choice or fixed (or a plain number, "
                          "string or boolean: a fixed value)", ex) from None
    return out
