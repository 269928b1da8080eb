"""`python -m poptune ARGS`: runs the `poptune` binary with ARGS (as `poptune ARGS` would)."""

import os
import subprocess
import sys

from ._binary import find_binary


def main():
    binary = find_binary()
    if os.name == "posix":
        os.execv(binary, [binary] + sys.argv[1:])
    sys.exit(subprocess.call([binary] + sys.argv[1:]))


if __name__ == "__main__":
    main()
