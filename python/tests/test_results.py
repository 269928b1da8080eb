"""Result parsing from fixture JSON in the schema of docs/json.md (no binary needed)."""

import json
import os
import sys
import unittest
from unittest import mock

import poptune
from poptune import _result

HERE = os.path.dirname(os.path.abspath(__file__))


def fixture(name):
    with open(os.path.join(HERE, "fixtures", name)) as f:
        return f.read()


class ParseTest(unittest.TestCase):
    def test_every_part_of_a_stopped_experiment(self):
        r = _result.parse(fixture("status.json"))
        self.assertEqual((r.name, r.directory, r.metric, r.mode), ("exp", "/abs/dir", "val_accuracy", "max"))
        self.assertEqual((r.state, r.reason), ("stopped", "time budget of 10 s used"))
        self.assertEqual(r.status, "stopped: time budget of 10 s used")
        self.assertEqual((r.elapsed_seconds, r.steps_per_member, r.compute, r.exploits), (12.5, 30, 64, 1))
        self.assertFalse(r.finished)
        b = r.best
        self.assertEqual((b.member, b.id, b.score, b.step, b.origin), (1, 1, 0.97, 30, 0))
        self.assertEqual(r.checkpoint, "/abs/dir/checkpoints/m0001-e000001-s00000030")
        self.assertEqual(b.h, {"lr": 0.01, "batch_size": 64})
        self.assertEqual([(s.start, s.end, s.h["lr"]) for s in r.schedule], [(0, 10, 0.02), (10, 30, 0.01)])
        self.assertEqual([m.id for m in r.population], [0, 1])
        self.assertIsNone(r.population[0].score)  # NaN is null
        self.assertEqual(r.population[1].state, "done")
        self.assertEqual(len(r.faults), 1)
        f = r.faults[0]
        self.assertEqual((f.member, f.step, f.kind), (1, 7, "crash"))
        self.assertIn("crashing on purpose", f.stderr)
        self.assertIn("best member 1", str(r))

    def test_steps_are_flat_records_with_metrics_and_hyperparameters(self):
        r = _result.parse(fixture("status.json"))
        self.assertEqual(len(r.steps), 3)
        self.assertEqual(r.steps[0], {"member": 0, "epoch": 0, "step": 1, "score": 0.5, "loss": 0.3,
                                      "metrics.step": 9, "h.lr": 0.05, "h.batch_size": 16})
        self.assertIsNone(r.steps[1]["score"])
        self.assertEqual(r.steps[2]["epoch"], 1)
        self.assertEqual(_result._columns(r.steps),
                         ["member", "epoch", "step", "score", "loss", "metrics.step", "h.lr", "h.batch_size"])

    def test_a_new_experiment_has_no_best(self):
        r = _result.parse(fixture("new.json"))
        self.assertIsNone(r.best)
        self.assertIsNone(r.checkpoint)
        self.assertEqual(r.schedule, [])
        self.assertEqual((r.state, r.mode, r.steps), ("new", "min", []))
        self.assertIn("no score yet", str(r))

    def test_wrong_schema_or_not_json_is_a_clear_error(self):
        doc = json.loads(fixture("new.json"))
        doc["schema"] = 2
        with self.assertRaisesRegex(poptune.PoptuneError, "schema 2.*matching versions"):
            _result.parse(json.dumps(doc))
        with self.assertRaisesRegex(poptune.PoptuneError, "not JSON"):
            _result.parse("error: nope")
        with self.assertRaisesRegex(poptune.PoptuneError, "no schema"):
            _result.parse("{}")
        del doc["schema"]

    def test_dataframe_without_pandas_says_how_to_get_it(self):
        r = _result.parse(fixture("status.json"))
        with mock.patch.dict(sys.modules, {"pandas": None}):
            with self.assertRaisesRegex(ImportError, "pip install pandas"):
                r.dataframe()

    def test_dataframe_with_pandas(self):
        calls = {}

        class FakeFrame:
            @staticmethod
            def from_records(records, columns):
                calls["args"] = (records, columns)
                return "frame"

        fake = mock.MagicMock(DataFrame=FakeFrame)
        r = _result.parse(fixture("status.json"))
        with mock.patch.dict(sys.modules, {"pandas": fake}):
            self.assertEqual(r.dataframe(), "frame")
        self.assertEqual(calls["args"][0], r.steps)
        self.assertEqual(calls["args"][1][:4], ["member", "epoch", "step", "score"])


class LoadArgumentsTest(unittest.TestCase):
    def test_bad_locations(self):
        with self.assertRaisesRegex(poptune.ConfigError, "not a folder"):
            poptune.load("/no/such/experiment/here")
        with self.assertRaisesRegex(poptune.ConfigError, "holds no experiment.db"):
            poptune.load(HERE)
        with self.assertRaisesRegex(poptune.ConfigError, "experiment's name"):
            poptune.load("postgres://u@h/db")
        with self.assertRaisesRegex(poptune.ConfigError, "only with a postgres:// URL"):
            poptune.load(HERE, experiment="x")

    def test_the_binary_is_found_by_poptune_bin_first(self):
        with mock.patch.dict(os.environ, {"POPTUNE_BIN": "/no/such/poptune"}):
            with self.assertRaisesRegex(poptune.RunError, "POPTUNE_BIN=/no/such/poptune is not an executable"):
                poptune.find_binary()
        exe = sys.executable
        with mock.patch.dict(os.environ, {"POPTUNE_BIN": exe}):
            self.assertEqual(poptune.find_binary(), os.path.abspath(exe))

    def test_no_binary_anywhere_is_a_clear_error(self):
        env = {k: v for k, v in os.environ.items() if k != "POPTUNE_BIN"}
        env["PATH"] = "/nonexistent"
        with mock.patch.dict(os.environ, env, clear=True), \
                mock.patch("sysconfig.get_path", return_value="/nonexistent"), \
                mock.patch.object(sys, "executable", "/nonexistent/python"):
            with self.assertRaisesRegex(poptune.RunError, "pip install"):
                poptune.find_binary()


if __name__ == "__main__":
    unittest.main()
