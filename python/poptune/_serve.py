"""`python -m poptune._serve FILE QUALNAME [MODULE]`: serves a Trainable class defined in a
Python file: what `Experiment.run(MyTrainable)` starts in each of poptune's slots.

The file is imported as a module, never as `__main__`, so a script's own
`if __name__ == "__main__": exp.run(...)` does not run again in the trainable processes.
With MODULE (the class's module was imported under that name, e.g. `models` or
`pkg.models`) the module is imported by its name, with the folder above it on sys.path;
without it (the class was defined in the script being run) the file is loaded under the name
`__poptune_main__`, with its folder first on sys.path as when Python runs a script.
"""

import gc
import importlib
import importlib.util
import os
import sys

from ._protocol import serve


def load_class(path, qualname, module=None):
    """The class `qualname` from the file at `path` (see the module's docstring)."""
    path = os.path.abspath(path)
    if module:
        root = os.path.dirname(path)
        parts = module.split(".")
        if os.path.basename(path) == "__init__.py":
            parts = parts + ["__init__"]
        for _ in parts[:-1]:
            root = os.path.dirname(root)
        if root not in sys.path:
            sys.path.insert(0, root)
        mod = importlib.import_module(module)
    else:
        name = "__poptune_main__"
        folder = os.path.dirname(path)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError("cannot import %s as a Python module" % path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    obj = mod
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (2, 3):
        sys.stderr.write("usage: python -m poptune._serve FILE QUALNAME [MODULE]\n")
        return 2
    cls = load_class(argv[0], argv[1], argv[2] if len(argv) == 3 else None)
    serve(cls)
    # The process ends now. Python's shutdown runs the garbage collector over every object
    # still alive, which with a large library loaded (PyTorch: about 300,000 objects, more once
    # torch.optim has imported torch._dynamo) takes most of a second; poptune waits for the
    # process to exit at the end of a run. Frozen objects are left out of those collections;
    # they are still freed by reference counting, and atexit handlers run as before. (Objects
    # held only by reference cycles are then not finalised at exit, which Python never
    # promises anyway; with triton loaded, its nanobind bindings say so in the slot's log:
    # "nanobind: leaked ... instances", harmless as the process is ending.)
    gc.freeze()
    return 0


if __name__ == "__main__":
    sys.exit(main())
