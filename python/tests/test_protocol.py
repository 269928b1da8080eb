"""Tests of the protocol helper (poptune.Trainable, poptune.serve), run by scripts/test:
python3 -m unittest discover -s python"""

import contextlib
import io
import json
import os
import tempfile
import unittest

import poptune as pt


class Counter(pt.Trainable):
    """Counts steps; remembers which member it was made for and whether it was loaded."""

    def __init__(self, member):
        super().__init__(member)
        self.made_for = member
        self.count = 0
        self.loaded = False

    def step(self, h):
        self.count += 1
        return float(self.made_for * 1000 + self.count)

    def save(self, directory):
        with open(os.path.join(directory, "count"), "w") as f:
            f.write(str(self.count))

    def load(self, directory):
        with open(os.path.join(directory, "count")) as f:
            self.count = int(f.read())
        self.loaded = True


def train(member, start, steps, restore, checkpoint):
    return {
        "type": "train", "protocol": 1, "member": member, "start_step": start,
        "steps": steps, "hyperparameters": {"lr": 0.1},
        "restore": restore and restore[0], "restore_id": restore and restore[1],
        "checkpoint": checkpoint[0], "checkpoint_id": checkpoint[1],
    }


class ServeTest(unittest.TestCase):
    def run_requests(self, requests):
        made = []

        def factory(member):
            obj = Counter(member)
            made.append(obj)
            return obj

        stdin = io.StringIO("".join(json.dumps(r) + "\n" for r in requests))
        stdout = io.StringIO()
        pt.serve(factory, stdin=stdin, stdout=stdout)
        answers = [json.loads(line) for line in stdout.getvalue().splitlines()]
        return answers, made

    def test_a_member_continues_from_memory_and_an_exploit_gets_its_own_member(self):
        with tempfile.TemporaryDirectory() as tmp:
            def ckpt(name):
                path = os.path.join(tmp, name)
                os.mkdir(path)
                return (path, name)

            a = ckpt("m6-s2")
            b = ckpt("m6-s4")
            c = ckpt("m3-s4")
            answers, made = self.run_requests([
                train(6, 0, 2, None, a),
                train(6, 2, 2, a, b),  # member 6 continues: the state in memory
                train(3, 2, 2, b, c),  # member 3 exploits member 6's newest checkpoint
            ])
        scores = [m["score"] for m in answers if m["type"] == "step"]
        self.assertEqual(scores, [6001, 6002, 6003, 6004, 3005, 3006])
        self.assertEqual([m["step"] for m in answers if m["type"] == "step"], [1, 2, 3, 4, 3, 4])
        self.assertEqual(sum(m["type"] == "saved" for m in answers), 3)
        # One object for member 6 across both of its segments; a fresh, loaded one for 3.
        self.assertEqual([o.made_for for o in made], [6, 3])
        self.assertFalse(made[0].loaded)
        self.assertTrue(made[1].loaded)
        self.assertEqual(made[1].member, 3)

    def test_an_exception_is_reported_and_the_process_keeps_serving(self):
        with tempfile.TemporaryDirectory() as tmp:
            missing = (os.path.join(tmp, "missing"), "missing")
            out = os.path.join(tmp, "out")
            os.mkdir(out)
            with contextlib.redirect_stderr(io.StringIO()) as err:
                answers, _ = self.run_requests([
                    train(0, 4, 1, missing, (out, "out")),
                    train(1, 0, 1, None, (out, "out")),
                ])
        self.assertIn("Traceback", err.getvalue())
        self.assertEqual(answers[0]["type"], "error")
        self.assertIn("FileNotFoundError", answers[0]["message"])
        self.assertEqual([a["type"] for a in answers[1:]], ["step", "saved"])


if __name__ == "__main__":
    unittest.main()
