"""The trainable protocol, in Python (standard library only): `poptune.Trainable` and
`poptune.serve`.

poptune starts your script as a long-lived process and speaks to it in JSON lines over
stdin/stdout (docs/protocol.md). This module does the protocol; you write a class:

    import poptune

    class MyTrainable(poptune.Trainable):
        def __init__(self, member):          # fresh state for population member `member`
            ...
        def step(self, h):                   # train one step with hyperparameters `h` (a dict)
            return score                     # or (score, {"loss": 0.3, ...})
        def save(self, directory):           # write the full training state into `directory`
            ...
        def load(self, directory):           # read it back (exactly)
            ...

    if __name__ == "__main__":
        poptune.serve(MyTrainable)

(or let `poptune.Experiment.run(MyTrainable)` start it for you: see docs/python.md).

While serving, `print()` goes to stderr (poptune keeps it in the experiment's logs/ folder):
stdout belongs to the protocol.
"""

import json
import math
import sys
import time

PROTOCOL = 1


class Trainable:
    """Base class of a trainable; override the four methods."""

    def __init__(self, member):
        self.member = member

    def step(self, h):
        raise NotImplementedError("step(h) must train one step and return the score")

    def save(self, directory):
        raise NotImplementedError("save(directory) must write the training state")

    def load(self, directory):
        raise NotImplementedError("load(directory) must read the training state")


def _step_line(step, score, metrics):
    """One step's answer; the same JSON as json.dumps would write, faster for a bare score."""
    score = _number(score)
    text = "null" if score is None else repr(score)
    if metrics:
        m = json.dumps({k: _number(v) for k, v in metrics.items()}, allow_nan=False)
    else:
        m = "{}"
    return '{"type": "step", "step": %d, "score": %s, "metrics": %s}\n' % (step, text, m)


_SAVED = '{"type": "saved"}\n'

# Seconds between the writes of a segment's step lines.
_SEND_EVERY = 0.25


def _number(x):
    x = float(x)
    return x if math.isfinite(x) else None


def serve(factory, stdin=None, stdout=None):
    """Answers poptune's requests until it says exit or closes stdin.

    `factory(member)` makes a fresh trainable. The state of the last segment stays in memory:
    when poptune asks to restore the checkpoint this process has just written, nothing is read
    from disk.
    """
    stdin = stdin or sys.stdin
    out = stdout
    if out is None:
        # The protocol's own buffered stream on stdout's file descriptor: this module flushes
        # it when an answer is due, so quick steps' lines go out in one write even when
        # PYTHONUNBUFFERED is set (it makes sys.stdout write every line on its own).
        sys.stdout.flush()
        out = open(sys.stdout.fileno(), "w", buffering=1 << 16, encoding="utf-8",
                   newline="\n", closefd=False)
        sys.stdout = sys.stderr  # print() in user code must not corrupt the protocol

    write, flush, clock = out.write, out.flush, time.monotonic

    def send(msg):
        write(json.dumps(msg, allow_nan=False) + "\n")
        flush()

    current = None
    current_id = None
    for line in stdin:
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            send({"type": "error", "message": "poptune sent a line that is not JSON"})
            continue
        kind = msg.get("type")
        if kind == "exit":
            break
        if kind != "train":
            send({"type": "error", "message": "unknown request type %r" % kind})
            continue
        try:
            restore = msg.get("restore")
            restore_id = msg.get("restore_id")
            if restore is None:
                obj = factory(msg["member"])
            elif (
                current is not None
                and restore_id is not None
                and restore_id == current_id
                and current.member == msg["member"]
            ):
                # The same member continues from the checkpoint this process just wrote: its
                # state is still in memory. (After an exploit the checkpoint is another
                # member's: it is loaded into a fresh object below, so that nothing __init__
                # made from `member` is the donor's.)
                obj = current
            else:
                obj = factory(msg["member"])
                obj.load(restore)
            h = msg["hyperparameters"]
            start = int(msg["start_step"])
            step = obj.step
            flushed = clock()
            for i in range(int(msg["steps"])):
                result = step(h)
                if isinstance(result, tuple):
                    score, metrics = result
                else:
                    score, metrics = result, None
                write(_step_line(start + i + 1, score, metrics))
                # The lines go out together, one write about every 0.25 s (a step that takes
                # longer sends its line as soon as it is done), and with the segment's end:
                # each write wakes the binary, and on cores shared with the other slots and
                # other work every wake-up is a chance for this process to lose its core.
                now = clock()
                if now - flushed >= _SEND_EVERY:
                    flush()
                    flushed = now
            obj.save(msg["checkpoint"])
            current, current_id = obj, msg.get("checkpoint_id")
            write(_SAVED)
            flush()
        except Exception as exc:  # report, keep serving; poptune restarts the member
            import traceback  # only here: it costs a few ms of every start-up

            traceback.print_exc(file=sys.stderr)
            current, current_id = None, None
            send({"type": "error", "message": "%s: %s" % (type(exc).__name__, exc)})
