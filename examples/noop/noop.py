"""A trainable that does no work, for measuring poptune's overhead: each step reports a
score from a counter; `POPTUNE_NOOP_SLEEP` (seconds) makes every step sleep that long.
Its behaviour on purpose can be faulty, for tests: `POPTUNE_NOOP_FAULT` = crash, hang,
garbage or nan, at member `POPTUNE_NOOP_FAULT_MEMBER` (default 0), step
`POPTUNE_NOOP_FAULT_STEP` (default 7), `POPTUNE_NOOP_FAULT_TIMES` times (default 1; counted
in a file next to the experiment so that restarts see it). `POPTUNE_NOOP_LOG` names a file to
which every step appends "member step worker start end" (worker: `POPTUNE_WORKER`, set by
distributed workers), so tests can see who trained what when. `POPTUNE_NOOP_CHATTY=1` writes a
line to stderr at every step; `POPTUNE_NOOP_FILES=N` adds N small files to every checkpoint.
"""

import os
import sys
import time

import poptune  # the package (pip install ./python), or python/ in PYTHONPATH

SLEEP = float(os.environ.get("POPTUNE_NOOP_SLEEP", "0"))
FAULT = os.environ.get("POPTUNE_NOOP_FAULT", "")
FAULT_MEMBER = int(os.environ.get("POPTUNE_NOOP_FAULT_MEMBER", "0"))
FAULT_STEP = int(os.environ.get("POPTUNE_NOOP_FAULT_STEP", "7"))
FAULT_TIMES = int(os.environ.get("POPTUNE_NOOP_FAULT_TIMES", "1"))
FAULT_COUNTER = os.environ.get("POPTUNE_NOOP_FAULT_COUNTER", "")
LOG = os.environ.get("POPTUNE_NOOP_LOG", "")
CHATTY = os.environ.get("POPTUNE_NOOP_CHATTY", "") == "1"
# Extra files in each checkpoint (a model saved as many shards), for tests of slow deletes.
FILES = int(os.environ.get("POPTUNE_NOOP_FILES", "0"))
WORKER = os.environ.get("POPTUNE_WORKER", "-")


def fault_due():
    if not FAULT or not FAULT_COUNTER:
        return False
    try:
        with open(FAULT_COUNTER) as f:
            n = int(f.read() or "0")
    except FileNotFoundError:
        n = 0
    if n >= FAULT_TIMES:
        return False
    with open(FAULT_COUNTER, "w") as f:
        f.write(str(n + 1))
    return True


class NoOp(poptune.Trainable):
    def __init__(self, member):
        super().__init__(member)
        self.steps = 0
        self.quality = ((member * 2654435761) % 1000) / 1000.0

    def step(self, h):
        self.steps += 1
        start = time.time()
        if SLEEP:
            time.sleep(SLEEP)
        if CHATTY:
            print("noop: member %d step %d" % (self.member, self.steps), file=sys.stderr, flush=True)
        if LOG:
            with open(LOG, "a") as f:
                f.write("%d %d %s %.6f %.6f\n" % (self.member, self.steps, WORKER, start, time.time()))
        if self.member == FAULT_MEMBER and self.steps == FAULT_STEP and fault_due():
            if FAULT == "crash":
                print("noop: crashing on purpose", file=sys.stderr)
                os._exit(3)
            if FAULT == "hang":
                time.sleep(3600)
            if FAULT == "garbage":
                sys.__stdout__.write("this is not json\n")
                sys.__stdout__.flush()
            if FAULT == "nan":
                return float("nan")
        return self.quality + 0.001 * self.steps * float(h.get("lr", 1.0))

    def save(self, directory):
        with open(os.path.join(directory, "state.txt"), "w") as f:
            f.write("%d %r" % (self.steps, self.quality))
        for i in range(FILES):
            with open(os.path.join(directory, "shard-%04d.bin" % i), "wb") as f:
                f.write(b"\0" * 64)

    def load(self, directory):
        with open(os.path.join(directory, "state.txt")) as f:
            s, q = f.read().split()
        self.steps, self.quality = int(s), float(q)


if __name__ == "__main__":
    poptune.serve(NoOp)
