"""Experiments described in Python: argument checks and the experiment file they write
(parsed back with tomllib, Python 3.11+). No binary needed."""

import os
import sys
import types
import unittest

import poptune
from poptune import _run, _toml

try:
    import tomllib
except ImportError:  # Python < 3.11: the TOML round trips are skipped, nothing else
    tomllib = None

needs_tomllib = unittest.skipIf(tomllib is None, "tomllib is in Python 3.11+")


def full():
    return poptune.Experiment(
        name="digits-1.x", metric="val_accuracy", mode="min", population=8,
        space={"lr": poptune.loguniform(1e-4, 1e-1), "batch": poptune.ordered([16, 32, 64]),
               "act": poptune.choice(["relu", "tanh"]), "wd": poptune.uniform(0, 0.1),
               "layers": poptune.randint(1, 4), "fixed": poptune.fixed(3), "flag": True,
               'odd "name".with dots': poptune.randint(1, 64, log=True)},
        policy=poptune.Policy(interval=5, burn_in=2, exploit=poptune.t_test(window=8, alpha=0.1),
                              explore=poptune.gaussian(0.2, resample_probability=0.1), sync=True,
                              inherit="weights", variant="exploit-only"),
        stop=poptune.Stop(steps=100, target=0.99, max_seconds=3600, plateau={"patience": 20, "min_delta": 0.001}),
        slots=4, gpus_per_slot=0.5, devices=[0, "1"], directory="/tmp/some where/digits", seed=7,
        initial="grid", step_timeout=60, max_failures=2, env={"OMP_NUM_THREADS": "1", "Q": 'a"b\\c\n'},
        cwd="/tmp")


class TomlTest(unittest.TestCase):
    @needs_tomllib
    def test_everything_reads_back_as_the_file_format_says(self):
        text = full().to_toml(["python3", "train.py", 'quote " back \\ slash', "tab\tnew\nline\x01é"])
        d = tomllib.loads(text)
        self.assertEqual({k: d[k] for k in ("name", "metric", "mode", "population", "seed", "slots", "initial", "directory")},
                         {"name": "digits-1.x", "metric": "val_accuracy", "mode": "min", "population": 8,
                          "seed": 7, "slots": 4, "initial": "grid", "directory": "/tmp/some where/digits"})
        self.assertEqual(d["policy"]["interval"], 5)
        self.assertEqual(d["policy"]["burn_in"], 2)
        self.assertEqual(d["policy"]["sync"], "synchronous")
        self.assertEqual(d["policy"]["inherit"], "weights")
        self.assertEqual(d["policy"]["variant"], "exploit-only")
        self.assertEqual(d["policy"]["exploit"], {"strategy": "t_test", "window": 8, "alpha": 0.1})
        self.assertEqual(d["policy"]["explore"], {"method": "gaussian", "std": 0.2, "resample_probability": 0.1})
        s = d["space"]
        self.assertEqual(s["lr"], {"type": "float", "low": 1e-4, "high": 0.1, "log": True})
        self.assertEqual(s["wd"], {"type": "float", "low": 0.0, "high": 0.1})
        self.assertIsInstance(s["wd"]["low"], float)  # uniform(0, 0.1): a decimal bound
        self.assertEqual(s["batch"], {"type": "ordered", "values": [16, 32, 64]})
        self.assertEqual(s["act"], {"type": "choice", "values": ["relu", "tanh"]})
        self.assertEqual(s["layers"], {"type": "int", "low": 1, "high": 4})
        self.assertEqual(s["fixed"], {"type": "fixed", "value": 3})
        self.assertEqual(s["flag"], {"type": "fixed", "value": True})
        self.assertEqual(s['odd "name".with dots'], {"type": "int", "low": 1, "high": 64, "log": True})
        self.assertEqual(list(s), ["lr", "batch", "act", "wd", "layers", "fixed", "flag", 'odd "name".with dots'])
        self.assertEqual(d["stop"], {"steps": 100, "target": 0.99, "max_seconds": 3600.0,
                                     "plateau": {"patience": 20, "min_delta": 0.001}})
        t = d["trainable"]
        self.assertEqual(t["command"], ["python3", "train.py", 'quote " back \\ slash', "tab\tnew\nline\x01é"])
        self.assertEqual(t["cwd"], "/tmp")
        self.assertEqual(t["env"], {"OMP_NUM_THREADS": "1", "Q": 'a"b\\c\n'})
        self.assertEqual((t["step_timeout"], t["max_failures"], t["gpus_per_slot"], t["devices"]), (60.0, 2, 0.5, ["0", "1"]))

    @needs_tomllib
    def test_defaults_write_the_files_defaults_and_leave_out_what_is_absent(self):
        exp = poptune.Experiment(name="q", population=2, space={"x": poptune.uniform(-1, 1)}, stop=poptune.Stop(10))
        d = tomllib.loads(exp.to_toml(["prog"], cwd="/w"))
        self.assertEqual(d["directory"], os.path.abspath("q"))
        self.assertEqual((d["metric"], d["mode"], d["seed"], d["slots"], d["initial"]), ("score", "max", 0, 1, "prior"))
        self.assertEqual(d["policy"]["exploit"], {"strategy": "truncation", "fraction": 0.25})
        self.assertEqual(d["policy"]["explore"], {"method": "perturb", "factors": [0.8, 1.2], "resample_probability": 0.25})
        self.assertEqual(d["policy"]["sync"], "asynchronous")
        self.assertEqual(d["stop"], {"steps": 10})
        self.assertNotIn("env", d["trainable"])
        self.assertNotIn("gpus_per_slot", d["trainable"])
        self.assertNotIn("devices", d["trainable"])

    @needs_tomllib
    def test_numbers_read_back_exactly(self):
        for x in (0.1, 1e-05, 1e16, 1e300, -2.5e-300, 5e-324, 3.0, 123456789.123456789, -0.0):
            self.assertEqual(tomllib.loads("x = " + _toml.value(x))["x"], x, x)
        for n in (0, -1, 2 ** 53, -(2 ** 63), 2 ** 63 - 1):
            self.assertEqual(tomllib.loads("x = " + _toml.value(n))["x"], n)

    def test_the_writer_refuses_what_toml_cannot_hold(self):
        for bad in (float("nan"), float("inf"), 2 ** 63, object()):
            with self.assertRaises((ValueError, TypeError)):
                _toml.value(bad)
        with self.assertRaises(ValueError):
            _toml.string("\udc80")

    def test_the_same_experiment_writes_the_same_file(self):
        self.assertEqual(full().to_toml(["a"]), full().to_toml(["a"]))


class ValidationTest(unittest.TestCase):
    def refused(self, argument, fn, *words):
        with self.assertRaises(poptune.ConfigError) as c:
            fn()
        msg = str(c.exception)
        self.assertIn(argument, msg)
        self.assertIn("e.g.", msg, msg)
        for w in words:
            self.assertIn(w, msg)
        self.assertIsInstance(c.exception, ValueError)
        return msg

    def exp(self, **kw):
        args = dict(name="a", population=2, space={"x": poptune.uniform(0, 1)}, stop=poptune.Stop(10))
        args.update(kw)
        return poptune.Experiment(**args)

    def test_names_follow_the_files_rule(self):
        for bad in ("", ".", "..", "a/b", "a b", "é", "x" * 256, 3, None):
            self.refused("name", lambda: self.exp(name=bad), "ASCII letters")
        msg = self.refused("name", lambda: self.exp(name="my exp/1"))
        self.assertIn("name='my-exp-1'", msg)
        self.assertEqual(self.exp(name="x" * 255).name, "x" * 255)
        self.assertEqual(self.exp(name="a.b-c_D9").name, "a.b-c_D9")

    def test_counts_and_words(self):
        self.refused("population", lambda: self.exp(population=0), "1 to 100000")
        self.refused("population", lambda: self.exp(population=8.0), "write 8, not 8.0")
        self.refused("population", lambda: self.exp(population="4"))
        self.refused("population", lambda: self.exp(population=True))
        self.refused("slots", lambda: self.exp(slots=0))
        self.refused("seed", lambda: self.exp(seed=-1))
        self.refused("mode", lambda: self.exp(mode="maximize"), "'max', 'min'")
        self.refused("metric", lambda: self.exp(metric=" "))
        self.refused("initial", lambda: self.exp(initial="random"))
        self.refused("step_timeout", lambda: self.exp(step_timeout=0))
        self.refused("max_failures", lambda: self.exp(max_failures=-1))
        self.refused("env", lambda: self.exp(env={"A": 1}))
        self.refused("directory", lambda: self.exp(directory=3))
        self.refused("stop", lambda: self.exp(stop=None))
        self.refused("policy", lambda: self.exp(policy={"interval": 5}))
        self.assertEqual(self.exp(stop=12).stop.steps, 12)

    def test_spaces(self):
        self.refused("space", lambda: self.exp(space={}), "empty")
        self.refused("space", lambda: self.exp(space=[1]))
        self.refused("space['b']", lambda: self.exp(space={"b": [16, 32]}), "ordered", "choice")
        self.refused("space", lambda: self.exp(space={"": 1}))
        self.refused("uniform", lambda: poptune.uniform(1, 0), "smaller")
        self.refused("uniform", lambda: poptune.uniform(0, float("inf")), "finite")
        self.refused("uniform(low)", lambda: poptune.uniform("0", 1))
        self.refused("loguniform", lambda: poptune.loguniform(0, 1), "low > 0")
        self.refused("randint(low)", lambda: poptune.randint(1.5, 4), "whole number")
        self.refused("randint", lambda: poptune.randint(4, 4), "smaller")
        self.refused("randint", lambda: poptune.randint(0, 4, log=True), "low >= 1")
        self.refused("ordered", lambda: poptune.ordered([16, "32"]), "element 2", "mixed")
        self.refused("ordered", lambda: poptune.ordered([1, 2.5]), "mixed")
        self.refused("choice", lambda: poptune.choice(["a", "a"]), "listed twice")
        self.refused("choice(values)", lambda: poptune.choice([]), "empty")
        self.refused("choice(values)", lambda: poptune.choice("relu"))
        self.refused("fixed", lambda: poptune.fixed(float("nan")), "finite")
        self.refused("fixed", lambda: poptune.fixed([1]))

    def test_policy_and_stop(self):
        self.refused("Policy(interval)", lambda: poptune.Policy(interval=0))
        self.refused("Policy(sync)", lambda: poptune.Policy(sync="yes"))
        self.refused("Policy(inherit)", lambda: poptune.Policy(inherit="all"))
        self.refused("Policy(variant)", lambda: poptune.Policy(variant="random"))
        self.refused("Policy(exploit)", lambda: poptune.Policy(exploit="truncation"))
        self.refused("Policy(explore)", lambda: poptune.Policy(explore=poptune.truncation()))
        self.refused("truncation(fraction)", lambda: poptune.truncation(0))
        self.refused("truncation(fraction)", lambda: poptune.truncation(1.5))
        self.refused("t_test(window)", lambda: poptune.t_test(window=1))
        self.refused("t_test(alpha)", lambda: poptune.t_test(alpha=1))
        self.refused("perturb(factors)", lambda: poptune.perturb([]))
        self.refused("perturb(factors[1])", lambda: poptune.perturb([0.8, -1]))
        self.refused("perturb(resample_probability)", lambda: poptune.perturb(resample_probability=2))
        self.refused("gaussian(std)", lambda: poptune.gaussian(-1))
        self.refused("Stop(steps)", lambda: poptune.Stop(0))
        self.refused("Stop(max_seconds)", lambda: poptune.Stop(10, max_seconds=0))
        self.refused("Stop(max_seconds)", lambda: poptune.Stop(10, max_seconds=1e10))
        self.refused("Stop(target)", lambda: poptune.Stop(10, target=float("nan")))
        self.refused("Plateau(patience)", lambda: poptune.Stop(10, plateau=11), "at most Stop(steps) = 10")
        self.refused("Stop(plateau)", lambda: poptune.Stop(10, plateau={"wait": 3}))
        self.refused("Plateau(min_delta)", lambda: poptune.Plateau(3, -1))
        self.assertEqual(poptune.Policy(sync="synchronous").sync, True)

    @needs_tomllib
    def test_algorithms_write_their_policy(self):
        for name in ("pb2", "pb2-mix", "fire"):
            d = tomllib.loads(self.exp(population=6, policy=poptune.Policy(algorithm=name)).to_toml(["x"]))
            self.assertEqual(d["policy"]["algorithm"], name)
            self.assertNotIn("fire", d["policy"])
        d = tomllib.loads(self.exp(policy=poptune.Policy()).to_toml(["x"]))
        self.assertNotIn("algorithm", d["policy"])  # PBT: the file's default
        fire = poptune.Fire([3, 2], 2, p_value=0.05, max_eval_steps=20, smoothing=3)
        d = tomllib.loads(self.exp(population=7, policy=poptune.Policy(algorithm=fire)).to_toml(["x"]))
        self.assertEqual(d["policy"]["algorithm"], "fire")
        self.assertEqual(d["policy"]["fire"], {"sub_populations": [3, 2], "evaluators": 2, "p_value": 0.05,
                                               "max_eval_steps": 20, "smoothing": 3})

    def test_algorithm_settings_are_checked(self):
        self.refused("Policy(algorithm)", lambda: poptune.Policy(algorithm="pb3"))
        self.refused("Fire(sub_populations)", lambda: poptune.Fire([4], 2))
        self.refused("Fire(sub_populations)", lambda: poptune.Fire([4, 1], 2))
        self.refused("Fire(evaluators)", lambda: poptune.Fire([4, 4], 0))
        self.refused("Fire(p_value)", lambda: poptune.Fire([4, 4], 2, p_value=1))
        self.refused("population", lambda: self.exp(population=9, policy=poptune.Policy(
            algorithm=poptune.Fire([4, 4], 2))), "(10)")

    def test_rules_against_the_steps(self):
        self.refused("Policy(interval)", lambda: self.exp(policy=poptune.Policy(interval=20)), "Stop(steps) = 10")
        self.refused("Policy(burn_in)", lambda: self.exp(policy=poptune.Policy(interval=5, burn_in=10)))
        self.refused("t_test(window)", lambda: self.exp(policy=poptune.Policy(exploit=poptune.t_test(window=20))))
        self.exp(policy=poptune.Policy(interval=20, variant="frozen"))  # frozen: no ready points

    def test_devices(self):
        for g in (0, 1, 2, 0.5, 0.25, 1 / 3):
            self.exp(gpus_per_slot=g)
        for g in (-1, 0.3, 1.5, float("nan"), "1", True):
            self.refused("gpus_per_slot", lambda: self.exp(gpus_per_slot=g), "divides one GPU")
        self.refused("devices[1]", lambda: self.exp(devices=[0, 0]), "listed once")
        self.refused("devices[0]", lambda: self.exp(devices=["a,b"]))
        self.refused("devices", lambda: self.exp(devices="0"))


class Local(poptune.Trainable):
    pass


class TrainableCommandTest(unittest.TestCase):
    def test_a_class_of_an_imported_module_file_is_served_by_its_module(self):
        command, env = _run.trainable_command(Local)
        self.assertEqual(command[:3], [sys.executable, "-m", "poptune._serve"])
        self.assertEqual(command[3], os.path.abspath(__file__.replace(".pyc", ".py")))
        self.assertEqual(command[4:], ["Local", __name__])

    def test_a_class_defined_in_a_notebook_cell_is_refused_clearly(self):
        main = types.ModuleType("__main__")  # a notebook's __main__ has no __file__
        cls = type("InCell", (poptune.Trainable,), {"__module__": "__main__"})
        real = sys.modules["__main__"]
        sys.modules["__main__"] = main
        try:
            with self.assertRaises(poptune.ConfigError) as c:
                _run.trainable_command(cls)
        finally:
            sys.modules["__main__"] = real
        msg = str(c.exception)
        self.assertIn("notebook cell", msg)
        self.assertIn("cannot be started in another process", msg)
        self.assertIn(".py file next to the notebook", msg)

    def test_other_things_are_refused(self):
        def in_function():
            class Inner(poptune.Trainable):
                pass
            return Inner

        with self.assertRaisesRegex(poptune.ConfigError, "inside a function"):
            _run.trainable_command(in_function())
        with self.assertRaisesRegex(poptune.ConfigError, "not an instance"):
            _run.trainable_command(Local(0))
        with self.assertRaisesRegex(poptune.ConfigError, "lacks step"):
            _run.trainable_command(type("NoStep", (), {"save": 1}))
        with self.assertRaisesRegex(poptune.ConfigError, "does not exist"):
            _run.trainable_command("/no/such/file.py:Model")
        with self.assertRaisesRegex(poptune.ConfigError, "ClassName"):
            _run.trainable_command("file.py")
        command, _ = _run.trainable_command("some.module:Model")
        self.assertEqual(command[-2:], ["some.module", "Model"])

    def test_run_needs_one_trainable(self):
        exp = poptune.Experiment(name="a", population=2, space={"x": 1}, stop=5)
        with self.assertRaisesRegex(poptune.ConfigError, "not neither"):
            exp.run()
        with self.assertRaisesRegex(poptune.ConfigError, "not both"):
            exp.run(Local, command=["x"])
        with self.assertRaisesRegex(poptune.ConfigError, "run\\(command\\)"):
            exp.run(command="python3 train.py")

    def test_the_package_imports_lazily(self):
        import subprocess

        code = ("import sys, poptune; assert 'subprocess' not in sys.modules, 'eager'; "
                "assert 'poptune._experiment' not in sys.modules; poptune.Experiment; "
                "assert 'poptune._experiment' in sys.modules; print(sorted(dir(poptune))[:3])")
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        out = subprocess.run([sys.executable, "-S", "-c", code], cwd=here, capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)


if __name__ == "__main__":
    unittest.main()
