"""Finding the `poptune` binary."""

import os
import shutil
import sys
import sysconfig

from ._errors import RunError

_EXE = "poptune.exe" if os.name == "nt" else "poptune"


def find_binary():
    """The `poptune` binary's path: `POPTUNE_BIN` if set, else the one installed beside this
    Python (the wheel puts it in the scripts folder, `sysconfig.get_path("scripts")`), else
    the first `poptune` in PATH. Raises RunError if there is none."""
    env = os.environ.get("POPTUNE_BIN")
    if env:
        if not (os.path.isfile(env) and os.access(env, os.X_OK)):
            raise RunError("POPTUNE_BIN=%s is not an executable file: point it at the poptune "
                           "binary (e.g. target/release/poptune after `cargo build --release -p "
                           "poptune-cli`), or unset it" % env)
        return os.path.abspath(env)
    candidates = []
    for scheme_path in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        if scheme_path:
            candidates.append(os.path.join(scheme_path, _EXE))
    try:  # a user install (pip install --user)
        candidates.append(os.path.join(sysconfig.get_path("scripts", "%s_user" % os.name), _EXE))
    except KeyError:
        pass
    for c in candidates:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    found = shutil.which("poptune")
    if found:
        return found
    raise RunError(
        "the poptune binary was not found (not in POPTUNE_BIN, not beside this Python in %s, "
        "not in PATH): install the package with `pip install poptune` or, from a checkout, "
        "`pip install ./python` (the wheel carries the binary), or build it with `cargo build "
        "--release -p poptune-cli` and set POPTUNE_BIN=target/release/poptune"
        % (sysconfig.get_path("scripts"),))
