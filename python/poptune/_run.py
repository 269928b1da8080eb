"""Running an Experiment: the trainable's command, the experiment file, and the `poptune`
binary driven as a child process (its live view on a terminal, progress lines otherwise)."""

import inspect
import os
import re
import signal
import site
import subprocess
import sys
import threading

from ._binary import find_binary
from ._errors import ConfigError, RunError, bad

FILE = "experiment.toml"
_ANSI = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07]*\x07|[@-Z\\-_])")
_NOTEBOOK_HELP = (
    "put the class in a .py file next to the notebook (e.g. models.py), then `from models import "
    "MyTrainable` and exp.run(MyTrainable); or give exp.run(\"models.py:MyTrainable\")")


def trainable_command(trainable):
    """The command that serves `trainable` (a class, or "file.py:Class", or "module:Class")
    in each of poptune's trainable processes, and the environment it needs."""
    if isinstance(trainable, (str, os.PathLike)):
        return _command_from_text(os.fspath(trainable))
    if not inspect.isclass(trainable):
        raise bad("run(trainable)", trainable, "a Trainable class (not an instance or function), "
                  "\"file.py:ClassName\", or command=[...] for another program",
                  "exp.run(MyTrainable)")
    missing = [m for m in ("step", "save", "load") if not callable(getattr(trainable, m, None))]
    if missing:
        raise bad("run(trainable)", trainable, "a trainable class has step(h), save(directory) and "
                  "load(directory) methods (subclass poptune.Trainable); this one lacks %s"
                  % ", ".join(missing), "class MyTrainable(poptune.Trainable): ...")
    qualname = trainable.__qualname__
    if "<locals>" in qualname:
        raise ConfigError(
            "run(trainable): %s is defined inside a function, so another process cannot import "
            "it: define the class at the top level of a .py file" % qualname, "trainable")
    module_name = trainable.__module__
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if not path or not os.path.isfile(path) or not path.endswith(".py"):
        if module_name == "__main__":
            raise ConfigError(
                "run(trainable): %s is defined in a notebook cell or an interactive session, and a "
                "class without a source file cannot be started in another process (poptune runs "
                "each trainable in its own Python process): %s" % (qualname, _NOTEBOOK_HELP),
                "trainable")
        raise ConfigError("run(trainable): the module %r of %s has no .py source file that another "
                          "process can import" % (module_name, qualname), "trainable")
    args = [sys.executable, "-m", "poptune._serve", os.path.abspath(path), qualname]
    if module_name != "__main__":
        args.append(module_name)
    return args, _python_env()


def _command_from_text(text):
    where, sep, qualname = text.rpartition(":")
    ex = 'exp.run("train.py:MyTrainable")'
    if not sep or not where or not qualname or not all(p.isidentifier() for p in qualname.split(".")):
        raise bad("run(trainable)", text, "\"path/to/file.py:ClassName\" or \"module:ClassName\"", ex)
    if where.endswith(".py") or os.sep in where or "/" in where:
        path = os.path.abspath(where)
        if not os.path.isfile(path):
            raise bad("run(trainable)", text, "the file %s does not exist" % path, ex)
        return [sys.executable, "-m", "poptune._serve", path, qualname], _python_env()
    if not all(p.isidentifier() for p in where.split(".")):
        raise bad("run(trainable)", text, "\"path/to/file.py:ClassName\" or \"module:ClassName\"", ex)
    code = ("import importlib, sys, poptune; m = importlib.import_module(sys.argv[1]); "
            "obj = m\nfor p in sys.argv[2].split('.'): obj = getattr(obj, p)\npoptune.serve(obj)")
    return [sys.executable, "-c", code, where, qualname], _python_env()


def _python_env():
    """PYTHONPATH for the trainable processes, when this poptune package is not where a new
    interpreter looks anyway (a checkout's python/ folder put on sys.path by hand)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    known = list(site.getsitepackages()) if hasattr(site, "getsitepackages") else []
    if hasattr(site, "getusersitepackages"):
        known.append(site.getusersitepackages())
    known += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if any(_same(here, k) for k in known):
        return {}
    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": here + (os.pathsep + path if path else "")}


def _same(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_command(command):
    ex = 'exp.run(command=["python3", "train.py"])'
    if isinstance(command, (str, bytes)) or not hasattr(command, "__iter__"):
        raise bad("run(command)", command, "a list: the program, then its arguments", ex)
    command = [os.fspath(c) if isinstance(c, os.PathLike) else c for c in command]
    if not command:
        raise bad("run(command)", command, "the list is empty: give the program first", ex)
    for i, c in enumerate(command):
        if not isinstance(c, str) or (i == 0 and not c) or "\x00" in c:
            raise bad("run(command[%d])" % i, c, "a non-empty string without NUL", ex)
    return command


def run_experiment(exp, trainable, command, quiet, store):
    from ._result import load

    if (trainable is None) == (command is None):
        raise ConfigError("run(): give the trainable (a Trainable class, or \"file.py:Class\") or "
                          "command=[...] (any program speaking the protocol), not %s; e.g. "
                          "exp.run(MyTrainable)" % ("both" if trainable is not None else "neither"),
                          "trainable")
    if command is not None:
        command, env = _check_command(command), {}
    else:
        command, env = trainable_command(trainable)
    if env:
        exp = _with_env(exp, env)
    if store is not None and (not isinstance(store, str) or not store.startswith(("postgres://", "postgresql://"))):
        raise bad("run(store)", store, "a PostgreSQL URL", 'store="postgres://poptune@db/poptune"')
    text = exp.to_toml(command)
    binary = find_binary()
    directory = exp.path
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise bad("directory", directory, "a folder, or one that does not exist yet: a file is in "
                  "the way; move it or give another directory", 'directory="runs/%s"' % exp.name)
    created = not os.path.exists(directory)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, FILE)
    old = None
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            old = f.read()
    _write(path, text)
    args = [binary, "run", path]
    if quiet:
        args.append("--quiet")
    if store is not None:
        args += ["--store", store]
    code, output = drive(args, quiet)
    if code == 2:
        # Refused before anything happened: leave the folder as it was.
        if old is not None:
            _write(path, old)
        else:
            os.remove(path)
            if created and not os.listdir(directory):
                os.rmdir(directory)
        raise ConfigError(_with_line(_message(output) or "poptune refused the experiment (exit code 2)",
                                     path, text))
    if code == 130 or code == -signal.SIGINT:
        raise RunError("poptune run was interrupted (exit code 130): what was trained is kept in %s; "
                       "run the same again to continue" % directory, code, output)
    if code != 0:
        why = _message(output)
        raise RunError("poptune run failed (exit code %s)%s" % (code, ": " + why if why else ""),
                       code, output)
    if store is not None:
        return load(store, experiment=exp.name)
    return load(directory)


def _with_env(exp, extra):
    import copy

    exp = copy.copy(exp)
    exp.env = dict(extra, **exp.env)
    return exp


def _write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, path)


def _with_line(message, path, text):
    """The message, with the generated file's line it points at (FILE:LINE:COLUMN: ...):
    the file is not kept when the binary refuses it."""
    m = re.match(re.escape(path) + r":(\d+):(\d+): ", message)
    lines = text.splitlines()
    if m and 1 <= int(m.group(1)) <= len(lines):
        message += "\n  (line %s of the generated file: %s)" % (m.group(1), lines[int(m.group(1)) - 1].strip())
    return message


def _message(output):
    """The binary's error message: its last lines that start with `error:`."""
    text = _ANSI.sub("", output).replace("\r\n", "\n").replace("\r", "\n")
    lines = [l for l in text.splitlines() if l.strip()]
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("error: "):
            return "\n".join([lines[i][len("error: "):]] + lines[i + 1:]).strip()
    return "\n".join(lines[-5:]).strip()


# ---- the child process -------------------------------------------------------------------------

_TAIL = 1 << 16


def _terminal():
    """Whether this process writes to a terminal itself (not a notebook, not redirected)."""
    try:
        return (os.name == "posix" and sys.stderr is sys.__stderr__ and sys.stderr is not None
                and os.isatty(sys.stderr.fileno()))
    except (AttributeError, ValueError, OSError):
        return False


def drive(args, quiet=False):
    """Runs the binary; returns (exit code, the end of its stderr). On a terminal its stderr is
    a pseudo-terminal copied to ours (the live view works, and its error message is kept);
    otherwise (a notebook, a file) stdout and stderr are copied line by line to sys.stdout and
    sys.stderr. Ctrl-C (KeyboardInterrupt) is passed on as one SIGINT, which stops the run
    cleanly; a second one ends it at once; then KeyboardInterrupt is raised."""
    tail = bytearray()
    lock = threading.Lock()

    def keep(data):
        with lock:
            tail.extend(data)
            del tail[:-_TAIL]

    posix = os.name == "posix"
    kw = {"start_new_session": True} if posix else {}
    threads = []
    master = None
    if _terminal() and not quiet:
        import pty

        master, slave = pty.openpty()
        _copy_size(slave)
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=slave, **kw)
        os.close(slave)
        threads.append(threading.Thread(target=_pump_pty, args=(master, keep), daemon=True))
    else:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, **kw)
        threads.append(threading.Thread(target=_pump_lines, args=(proc.stderr, "stderr", keep),
                                        daemon=True))
    threads.append(threading.Thread(target=_pump_lines, args=(proc.stdout, "stdout", None), daemon=True))
    for t in threads:
        t.start()
    interrupted = 0
    while True:
        try:
            code = proc.wait()
            break
        except KeyboardInterrupt:
            interrupted += 1
            if interrupted == 1:
                sys.stderr.write("\npoptune: stopping (the segments under way finish and are "
                                 "recorded; Ctrl-C again to end at once)\n")
                sys.stderr.flush()
            try:
                proc.send_signal(signal.SIGINT)
            except OSError:
                pass
    for t in threads:
        t.join(timeout=5)
    if master is not None:
        try:
            os.close(master)
        except OSError:
            pass
    output = bytes(tail).decode("utf-8", "replace")
    if interrupted:
        raise KeyboardInterrupt("poptune run stopped: run the same again to continue")
    return code, output


def _copy_size(fd):
    """Gives the pseudo-terminal our terminal's size, and no \n -> \r\n translation (our
    terminal does that once)."""
    try:
        import fcntl
        import termios

        size = fcntl.ioctl(sys.stderr.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, size)
        attrs = termios.tcgetattr(fd)
        attrs[1] &= ~termios.ONLCR
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    except (ImportError, OSError, ValueError):
        pass


def _pump_pty(master, keep):
    out = sys.stderr.fileno()
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every writer closed the pseudo-terminal
            return
        if not data:
            return
        keep(data)
        try:
            os.write(out, data)
        except OSError:
            pass


def _pump_lines(stream, name, keep):
    for line in iter(stream.readline, b""):
        if keep is not None:
            keep(line)
        target = getattr(sys, name)
        if target is None:
            continue
        try:
            target.write(line.decode("utf-8", "replace"))
            target.flush()
        except (ValueError, OSError):
            pass
    stream.close()
