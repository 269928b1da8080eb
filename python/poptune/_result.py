"""An experiment's results, read through `poptune status --json --steps` (docs/json.md; the
steps are its `history`): the
only way this package reads an experiment, for a directory or a PostgreSQL store alike."""

import json
import os
import subprocess
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ._binary import find_binary
from ._errors import ConfigError, PoptuneError, RunError, bad

SCHEMA = 1
STATES = ("new", "running", "killed", "interrupted", "finished", "stopped", "failed")


@dataclass(frozen=True)
class Segment:
    """One piece of a schedule: steps start+1 .. end were trained with `h`."""

    start: int
    end: int
    h: Dict[str, Any]


@dataclass(frozen=True)
class Best:
    """The best member: its id, score and step, checkpoint (a directory), hyperparameters and
    the schedule that produced its state, followed back through its donors to the member
    whose initial state it starts from (`origin`)."""

    member: int
    score: Optional[float]
    step: int
    checkpoint: Optional[str]
    h: Dict[str, Any]
    schedule: List[Segment]
    origin: Optional[int] = None

    @property
    def id(self):
        return self.member


@dataclass(frozen=True)
class Member:
    """One member of the population as it stands."""

    id: int
    step: int
    score: Optional[float]
    state: str
    h: Dict[str, Any]
    checkpoint: Optional[str]
    failures: int = 0


@dataclass(frozen=True)
class Fault:
    """A trainable's fault: crash, hang, garbage, NaN ... with the end of its stderr."""

    member: int
    step: int
    kind: str
    message: str
    stderr: str = ""


@dataclass
class Result:
    """An experiment as `poptune status --json --steps` reports it.

    best: the best member (None before any score); checkpoint and schedule: the best member's;
    population: every Member; faults: every Fault; steps: one dict per recorded step
    (member, epoch, step, score, each metric by name, and each hyperparameter the step was
    trained with as "h.NAME": the columns of `poptune report`'s steps.csv);
    dataframe(): the same as a pandas DataFrame. state is one of new, running, killed,
    interrupted, finished, stopped, failed; reason says why it stopped or failed.
    """

    name: str
    directory: Optional[str]
    metric: str
    mode: str
    status: str
    state: str
    reason: Optional[str]
    elapsed_seconds: Optional[float]
    steps_per_member: Optional[int]
    compute: int
    exploits: int
    best: Optional[Best]
    population: List[Member]
    faults: List[Fault]
    steps: List[Dict[str, Any]]
    source: Dict[str, Any] = field(default_factory=dict, repr=False)
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def checkpoint(self):
        """The best member's checkpoint directory (None before any)."""
        return self.best.checkpoint if self.best else None

    @property
    def schedule(self):
        """The best member's schedule: a list of Segments (empty before any score)."""
        return self.best.schedule if self.best else []

    @property
    def finished(self):
        return self.state == "finished"

    def dataframe(self):
        """`steps` as a pandas DataFrame (pandas is not a dependency of poptune: install it
        with `pip install pandas`)."""
        try:
            import pandas
        except ImportError:
            raise ImportError(
                "Result.dataframe() needs pandas, which poptune does not install: `pip install "
                "pandas` (or `pip install poptune[pandas]`); Result.steps holds the same rows as "
                "a list of dicts") from None
        columns = _columns(self.steps)
        return pandas.DataFrame.from_records(self.steps, columns=columns)

    def refresh(self):
        """The experiment as it stands now (for a running one)."""
        return load(self.source.get("location"), experiment=self.source.get("experiment"))

    def __str__(self):
        if self.best is None:
            best = "no score yet"
        else:
            best = "best member %d: %s = %s at step %d" % (
                self.best.member, self.metric, self.best.score, self.best.step)
        return "experiment %s (%s): %s; %d members, %d member-steps trained, %d faults" % (
            self.name, self.state, best, len(self.population), self.compute, len(self.faults))


def _columns(records):
    seen, out = set(), []
    for r in records:
        for k in r:
            if k not in seen:
                seen.add(k)
                out.append(k)
    return out


def _float(x):
    return None if x is None else float(x)


def _segment(s):
    return Segment(int(s["start"]), int(s["end"]), dict(s.get("h") or {}))


def step_record(s):
    """One step as a flat dict: member, epoch, step, score, metrics by name, h.NAME."""
    rec = {"member": s.get("member"), "epoch": s.get("epoch", 0), "step": s.get("step"),
           "score": _float(s.get("score"))}
    for k, v in (s.get("metrics") or {}).items():
        rec["metrics." + k if k in rec or k.startswith("h.") else k] = v
    for k, v in (s.get("h") or {}).items():
        rec["h." + k] = v
    return rec


def parse(doc, source=None):
    """A Result from the JSON `poptune status --json --steps` prints (text or parsed)."""
    if isinstance(doc, (str, bytes)):
        try:
            doc = json.loads(doc)
        except ValueError as e:
            raise PoptuneError("poptune status --json printed something that is not JSON: %s" % e) from None
    if not isinstance(doc, dict) or "schema" not in doc:
        raise PoptuneError("poptune status --json printed no schema field: not the JSON this "
                           "package reads (docs/json.md)")
    if doc["schema"] != SCHEMA:
        raise PoptuneError("poptune status --json speaks schema %r, this package reads schema %d: "
                           "install matching versions of the package and the binary"
                           % (doc["schema"], SCHEMA))
    try:
        best = None
        b = doc.get("best")
        if b is not None:
            origin = b.get("origin")
            best = Best(int(b["member"]), _float(b.get("score")), int(b.get("step", 0)),
                        b.get("checkpoint"), dict(b.get("h") or {}),
                        [_segment(s) for s in b.get("schedule") or []],
                        None if origin is None else int(origin))
        members = [Member(int(m["id"]), int(m.get("step", 0)), _float(m.get("score")),
                          m.get("state", ""), dict(m.get("h") or {}), m.get("checkpoint"),
                          int(m.get("failures", 0)))
                   for m in doc.get("members") or []]
        faults = [Fault(int(f.get("member", -1)), int(f.get("step", 0)), f.get("kind", ""),
                        f.get("message", ""), f.get("stderr") or "")
                  for f in doc.get("faults") or []]
        count = doc.get("steps")
        steps = [step_record(s) for s in doc.get("history") or []]
        return Result(
            name=doc.get("name", ""), directory=doc.get("directory"),
            metric=doc.get("metric", "score"), mode=doc.get("mode", "max"),
            status=doc.get("status", doc.get("state", "")), state=doc.get("state", ""),
            reason=doc.get("reason"), elapsed_seconds=_float(doc.get("elapsed_seconds")),
            steps_per_member=None if count is None else int(count),
            compute=int(doc.get("compute") or 0), exploits=int(doc.get("exploits") or 0),
            best=best, population=members, faults=faults, steps=steps,
            source=dict(source or {}), raw=doc)
    except (KeyError, TypeError, ValueError) as e:
        raise PoptuneError("poptune status --json: unexpected shape (%s: %s); install matching "
                           "versions of the package and the binary" % (type(e).__name__, e)) from None


def _is_url(text):
    return isinstance(text, str) and text.startswith(("postgres://", "postgresql://"))


def status_json(location, experiment=None, binary=None):
    """The text `poptune status ... --json --steps` prints for a directory or a store."""
    binary = binary or find_binary()
    if _is_url(location):
        args = [binary, "status", "--store", location, "--experiment", experiment]
    else:
        args = [binary, "status", location]
    args += ["--json", "--steps"]
    proc = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    err = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        if "--json" in err and ("unexpected argument" in err or "unrecognized" in err):
            raise RunError("the poptune binary %s cannot report to Python (it has no `status "
                           "--json`): install a newer one" % binary, proc.returncode, err)
        msg = err[len("error: "):] if err.startswith("error: ") else err
        cls = ConfigError if proc.returncode == 2 else RunError
        if cls is ConfigError:
            raise ConfigError("poptune status %s: %s" % (location if not _is_url(location) else experiment, msg))
        raise RunError("poptune status failed (exit code %d): %s" % (proc.returncode, msg),
                       proc.returncode, err)
    return proc.stdout.decode("utf-8")


def load(location, experiment=None):
    """Opens a finished or running experiment: a directory (the one `run` wrote), or a
    postgres:// URL with the experiment's name. Returns a Result."""
    if isinstance(location, os.PathLike):
        location = os.fspath(location)
    if not isinstance(location, str) or not location:
        raise bad("load(location)", location, "an experiment directory, or a postgres:// URL with "
                  "experiment=NAME", 'poptune.load("digits")')
    if _is_url(location):
        if not isinstance(experiment, str) or not experiment:
            raise bad("load(experiment)", experiment, "the experiment's name: a store holds many",
                      'poptune.load("postgres://poptune@db/poptune", experiment="digits")')
        text = status_json(location, experiment)
        return parse(text, {"location": location, "experiment": experiment})
    if experiment is not None:
        raise bad("load(experiment)", experiment, "only with a postgres:// URL: a directory holds "
                  "one experiment", 'poptune.load("runs/digits")')
    directory = os.path.abspath(location)
    if not os.path.isdir(directory):
        raise bad("load(location)", location, "an experiment directory: %s is not a folder" % directory,
                  'poptune.load("digits")')
    if not os.path.exists(os.path.join(directory, "experiment.db")):
        raise bad("load(location)", location, "an experiment directory: %s holds no experiment.db "
                  "(has the experiment run yet?)" % directory, 'poptune.load("digits")')
    return parse(status_json(directory), {"location": directory, "experiment": None})
