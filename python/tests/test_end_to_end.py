"""End-to-end: Experiment.run and poptune.load with the real `poptune` binary and tiny
pure-Python trainables (no numpy).

The binary: POPTUNE_BIN, else the one the package finds (beside this Python, or in PATH),
else the checkout's target/release/poptune or target/debug/poptune. None of them: these
tests fail (build it with `cargo build --release -p poptune-cli`); they never skip.
"""

import contextlib
import io
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

import poptune
from poptune import _binary

from . import e2e_trainables
from .e2e_trainables import Quadratic

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(PYTHON_DIR)


def setUpModule():
    if os.environ.get("POPTUNE_BIN"):
        _binary.find_binary()  # a clear error if it is not a binary
        return
    try:
        _binary.find_binary()
        return
    except poptune.RunError:
        pass
    for profile in ("release", "debug"):
        candidate = os.path.join(REPO, "target", profile, "poptune")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            os.environ["POPTUNE_BIN"] = candidate
            return
    raise AssertionError(
        "the end-to-end tests need the poptune binary: build it with `cargo build --release -p "
        "poptune-cli` (they then find target/release/poptune), or set POPTUNE_BIN to its path")


def quiet(fn, *args, **kw):
    """Runs fn with stdout and stderr captured (the binary's output is copied there, lines
    and all, since they are not a terminal); returns (its value, what was written)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        value = fn(*args, **kw)
    return value, out.getvalue() + err.getvalue()


def child_env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = PYTHON_DIR + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


class EndToEnd(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = self._tmp.name
        self.addCleanup(self._tmp.cleanup)

    def quad(self, steps=10, population=4, name="quad", **kw):
        space = {"lr": poptune.loguniform(0.01, 0.5)}
        space.update(kw.pop("extra", {}))
        return poptune.Experiment(
            name=name, population=population, slots=2, space=space,
            policy=poptune.Policy(interval=5, sync=True), stop=poptune.Stop(steps),
            directory=os.path.join(self.tmp, name), cwd=self.tmp, **kw)

    def test_a_class_from_a_module_file_runs_and_its_result_is_complete(self):
        exp = self.quad(extra={"act": poptune.choice(["a", "b"]), "k": poptune.randint(1, 3),
                               "b": poptune.ordered([16, 32]), "f": poptune.fixed(3)})
        r, out = quiet(exp.run, Quadratic)
        self.assertIn("finished", out)
        self.assertEqual(r.state, "finished", out)
        self.assertEqual((r.name, r.metric, r.mode, r.steps_per_member), ("quad", "score", "max", 10))
        self.assertEqual(r.directory, os.path.join(self.tmp, "quad"))
        self.assertEqual(len(r.population), 4)
        self.assertTrue(all(m.step == 10 and m.state == "done" for m in r.population))
        self.assertIsNotNone(r.best)
        self.assertEqual(r.best.step, 10)
        self.assertEqual(r.best.score, max(m.score for m in r.population))
        self.assertTrue(os.path.isfile(os.path.join(r.checkpoint, "state")))
        self.assertEqual(r.schedule[0].start, 0)
        self.assertEqual(r.schedule[-1].end, 10)
        self.assertGreaterEqual(r.compute, 40)
        self.assertGreaterEqual(len(r.steps), 40)
        for rec in r.steps:
            self.assertEqual(set(rec) >= {"member", "epoch", "step", "score", "x", "h.lr", "h.act", "h.k", "h.b", "h.f"}, True, rec)
            self.assertEqual(rec["h.f"], 3)
            self.assertIn(rec["h.b"], (16, 32))
        self.assertEqual(r.faults, [])
        # The file it wrote, beside the experiment, runs with the binary alone too.
        with open(os.path.join(r.directory, "experiment.toml")) as f:
            text = f.read()
        self.assertIn("poptune._serve", text)
        self.assertIn("e2e_trainables.py", text)
        # load() reads the same; a run of the finished experiment trains nothing.
        self.assertEqual(poptune.load(r.directory).best, r.best)
        again, out = quiet(exp.run, Quadratic)
        self.assertIn("already finished", out)
        self.assertEqual((again.best, again.compute), (r.best, r.compute))
        # Raising the steps trains it on.
        more = self.quad(steps=15, extra={"act": poptune.choice(["a", "b"]), "k": poptune.randint(1, 3),
                                          "b": poptune.ordered([16, 32]), "f": poptune.fixed(3)})
        longer, out = quiet(more.run, Quadratic)
        self.assertIn("stop rules changed", out)
        self.assertEqual((longer.state, longer.best.step, longer.steps_per_member), ("finished", 15, 15))

    def test_pb2_and_fire_run_from_python_and_stay_in_the_space(self):
        for alg in ("pb2", "pb2-mix", "fire"):
            exp = poptune.Experiment(
                name="alg-" + alg, population=6, slots=2,
                space={"lr": poptune.loguniform(0.01, 0.5), "act": poptune.choice(["a", "b"])},
                policy=poptune.Policy(interval=2, sync=True, algorithm=alg), stop=poptune.Stop(12),
                directory=os.path.join(self.tmp, alg), cwd=self.tmp)
            r, out = quiet(exp.run, Quadratic)
            self.assertEqual(r.state, "finished", out)
            self.assertTrue(all(m.step == 12 for m in r.population), out)
            for rec in r.steps:
                self.assertTrue(0.01 <= rec["h.lr"] <= 0.5, rec)
                self.assertIn(rec["h.act"], ("a", "b"))

    def test_a_class_given_as_file_and_name(self):
        path = os.path.abspath(e2e_trainables.__file__)
        r, _ = quiet(self.quad().run, path + ":Quadratic")
        self.assertEqual(r.state, "finished")

    def test_any_program_through_command(self):
        noop = os.path.join(REPO, "examples", "noop", "noop.py")
        exp = poptune.Experiment(name="noop", population=3, space={"lr": poptune.uniform(0.1, 1)},
                                 stop=poptune.Stop(6), policy=poptune.Policy(interval=3),
                                 directory=os.path.join(self.tmp, "noop"), env={"PYTHONPATH": PYTHON_DIR})
        r, _ = quiet(exp.run, command=[sys.executable, noop])
        self.assertEqual((r.state, len(r.population), r.best.step), ("finished", 3, 6))

    def test_a_fault_is_reported_with_its_message(self):
        markers = os.path.join(self.tmp, "markers")
        os.mkdir(markers)
        exp = self.quad(extra={"fail_at": 3}, env={"E2E_MARKERS": markers})
        r, _ = quiet(exp.run, Quadratic)
        self.assertEqual(r.state, "finished")
        self.assertEqual(len(r.faults), 1, r.faults)
        f = r.faults[0]
        self.assertEqual((f.member, f.kind), (0, "error"))
        self.assertIn("failing on purpose", f.message)
        self.assertIn("RuntimeError", f.stderr)

    def test_what_the_binary_refuses_is_a_config_error_with_its_message(self):
        quiet(self.quad().run, Quadratic)
        path = os.path.join(self.tmp, "quad", "experiment.toml")
        with open(path) as f:
            before = f.read()
        with self.assertRaises(poptune.ConfigError) as c:
            quiet(self.quad(population=5).run, Quadratic)
        self.assertIn("different definition", str(c.exception))
        with open(path) as f:
            self.assertEqual(f.read(), before, "the refused file is not left in place")
        # A directory that is a file is refused before anything runs.
        open(os.path.join(self.tmp, "taken"), "w").close()
        with self.assertRaisesRegex(poptune.ConfigError, "a file is in the way"):
            quiet(self.quad(name="taken").run, Quadratic)

    def test_a_binary_refusal_of_a_new_experiment_leaves_nothing(self):
        exp = self.quad(gpus_per_slot=1, devices=["0"])  # 2 slots, one GPU: not enough devices
        try:
            r, out = quiet(exp.run, Quadratic)
        except poptune.ConfigError as e:
            self.assertFalse(os.path.exists(os.path.join(self.tmp, "quad")), str(e))
            self.assertIn("gpus_per_slot", str(e))
        else:  # a binary that assigns devices by other rules
            self.assertEqual(r.state, "finished", out)

    def test_progress_lines_are_copied_when_output_is_not_a_terminal(self):
        r, out = quiet(self.quad(steps=10).run, Quadratic)
        self.assertIn("starting experiment `quad`", out)
        self.assertIn("best member", out)
        _, out = quiet(self.quad(steps=10).run, Quadratic, quiet=True)
        self.assertIn("already finished", out)

    def script(self, body):
        path = os.path.join(self.tmp, "train.py")
        with open(path, "w") as f:
            f.write(textwrap.dedent(body))
        return path

    SCRIPT = """
        import os
        import sys
        import time
        import poptune

        HERE = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(HERE, "imports.log"), "a") as f:
            f.write(__name__ + "\\n")

        class Model(poptune.Trainable):
            def __init__(self, member):
                super().__init__(member)
                self.x = 0.0
            def step(self, h):
                time.sleep(h["sleep"])
                self.x += h["lr"] * (1.0 - self.x)
                return self.x
            def save(self, d):
                open(os.path.join(d, "x"), "w").write(repr(self.x))
            def load(self, d):
                self.x = float(open(os.path.join(d, "x")).read())

        if __name__ == "__main__":
            exp = poptune.Experiment(name="script", population=4, slots=2,
                                     space={"lr": poptune.uniform(0.1, 0.5), "sleep": float(sys.argv[1])},
                                     policy=poptune.Policy(interval=5), stop=poptune.Stop(int(sys.argv[2])),
                                     directory=os.path.join(HERE, "script"))
            result = exp.run(Model)
            print("BEST", result.best.member, result.best.step, result.state)
            if len(sys.argv) > 3:  # another definition in the same directory: refused
                try:
                    poptune.Experiment(name="script", population=3, space={"lr": 1}, stop=5,
                                       directory=os.path.join(HERE, "script")).run(Model)
                except poptune.ConfigError as e:
                    print("REFUSED:", e)
    """

    def test_a_class_in_the_script_being_run_is_served_without_running_its_main_again(self):
        path = self.script(self.SCRIPT)
        out = subprocess.run([sys.executable, path, "0", "10"], capture_output=True, text=True,
                             env=child_env(), timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"BEST \d 10 finished")
        with open(os.path.join(self.tmp, "imports.log")) as f:
            names = f.read().split()
        self.assertEqual(names.count("__main__"), 1, names)
        self.assertGreaterEqual(names.count("__poptune_main__"), 1, names)

    def test_ctrl_c_stops_cleanly_and_the_same_run_continues(self):
        path = self.script(self.SCRIPT)
        proc = subprocess.Popen([sys.executable, path, "0.05", "40"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=child_env())
        db = os.path.join(self.tmp, "script", "experiment.db")
        deadline = time.time() + 60
        while time.time() < deadline:
            if os.path.exists(db) and poptune.load(os.path.dirname(db)).steps:
                break
            time.sleep(0.1)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        self.assertNotEqual(proc.returncode, 0, out + err)
        self.assertIn("KeyboardInterrupt", err)
        self.assertIn("poptune: stopping", err)
        r = poptune.load(os.path.join(self.tmp, "script"))
        self.assertEqual(r.state, "interrupted", err)
        self.assertLess(r.best.step if r.best else 0, 40)
        again = subprocess.run([sys.executable, path, "0.05", "40"], capture_output=True, text=True,
                               env=child_env(), timeout=120)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("resuming experiment", again.stderr)
        self.assertRegex(again.stdout, r"BEST \d 40 finished")

    @unittest.skipUnless(os.name == "posix", "pseudo-terminals are POSIX")
    def test_on_a_terminal_the_live_view_passes_through_and_refusals_keep_their_message(self):
        import pty

        path = self.script(self.SCRIPT)
        master, slave = pty.openpty()
        proc = subprocess.Popen([sys.executable, path, "0.01", "10", "refuse"], stdin=slave,
                                stdout=slave, stderr=slave, env=child_env(), start_new_session=True)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        os.close(master)
        text = b"".join(chunks).decode("utf-8", "replace").replace("\r", "")
        self.assertEqual(proc.wait(timeout=60), 0, text)
        self.assertRegex(text, r"BEST \d 10 finished")
        self.assertIn("starting experiment `script`", text)
        # The binary's own message, kept from its pseudo-terminal output.
        self.assertRegex(text, r"REFUSED: .*already holds experiment `script` with a different definition")


if __name__ == "__main__":
    unittest.main()
