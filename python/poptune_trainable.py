"""Compatibility shim: the protocol helper now lives in the `poptune` package.

Old scripts that put this folder on sys.path and `import poptune_trainable as pt` keep working;
new ones write `import poptune` and use `poptune.Trainable` and `poptune.serve`
(docs/python.md).
"""

from poptune._protocol import PROTOCOL, Trainable, serve  # noqa: F401
from poptune._protocol import _number, _step_line  # noqa: F401  (older tests used them)

__all__ = ["PROTOCOL", "Trainable", "serve"]
