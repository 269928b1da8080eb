"""The errors the package raises."""


class PoptuneError(Exception):
    """Base class of poptune's errors."""


class ConfigError(PoptuneError, ValueError):
    """An experiment that cannot be run: a bad argument (caught in Python, before anything is
    written), or a definition the `poptune` binary refused (exit code 2; the message is the
    binary's). `argument` names the argument when Python caught it, else None."""

    def __init__(self, message, argument=None):
        super().__init__(message)
        self.argument = argument


class RunError(PoptuneError, RuntimeError):
    """The `poptune` binary failed (exit code 1, or killed), or cannot be found or used.
    `code` is its exit code when it ran; `output` the end of what it wrote to stderr."""

    def __init__(self, message, code=None, output=""):
        super().__init__(message)
        self.code = code
        self.output = output


def bad(argument, got, what, example):
    """A ConfigError in the package's one format:
    `ARGUMENT = GOT: what a valid value is; e.g. EXAMPLE`."""
    return ConfigError("%s = %s: %s; e.g. %s" % (argument, _show(got), what, example), argument)


def _show(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
