"""Experiment.run(store=URL) and poptune.load(URL, experiment=NAME) with PostgreSQL: run by
scripts/test, which starts a server and sets POPTUNE_TEST_PG_URL (without it these tests are
skipped, and say so)."""

import contextlib
import io
import os
import tempfile
import time
import unittest

import poptune

from . import test_end_to_end  # noqa: F401  (finds the binary: its setUpModule)
from .e2e_trainables import Quadratic

URL = os.environ.get("POPTUNE_TEST_PG_URL")


def setUpModule():
    test_end_to_end.setUpModule()


@unittest.skipUnless(URL, "POPTUNE_TEST_PG_URL is not set: start a server with "
                          "`export POPTUNE_TEST_PG_URL=$(scripts/pg-test-server)`")
class StoreTest(unittest.TestCase):
    def test_run_in_postgres_and_load_by_name(self):
        with tempfile.TemporaryDirectory() as tmp:
            name = "py-%d-%d" % (os.getpid(), time.time_ns())
            exp = poptune.Experiment(name=name, population=3, slots=2,
                                     space={"lr": poptune.loguniform(0.01, 0.5)},
                                     policy=poptune.Policy(interval=5), stop=poptune.Stop(10),
                                     directory=os.path.join(tmp, "shared"), cwd=tmp)
            out = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                r = exp.run(Quadratic, store=URL)
            self.assertEqual((r.name, r.state), (name, "finished"), out.getvalue())
            self.assertEqual(r.best.step, 10)
            self.assertGreaterEqual(len(r.steps), 30)
            again = poptune.load(URL, experiment=name)
            self.assertEqual(again.best, r.best)
            self.assertEqual(again.refresh().compute, r.compute)
            with self.assertRaises(poptune.PoptuneError):
                poptune.load(URL, experiment=name + "-no-such")


if __name__ == "__main__":
    unittest.main()
