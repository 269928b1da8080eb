"""A small TOML writer for the experiment file: the values an experiment holds (strings,
booleans, whole and decimal numbers, lists of them, inline tables), nothing more. Standard
library only."""

import math
import re

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def string(text):
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = ['"']
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\u%04X" % ord(ch))
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            raise ValueError("the text %r holds a lone surrogate (not UTF-8 text)" % text)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def key(name):
    """A key: bare when it can be, else quoted."""
    return name if _BARE.match(name) else string(name)


def value(v):
    """A TOML value for a Python value (bool, int, float, str, list, dict)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        if not -(2 ** 63) <= v < 2 ** 63:
            raise ValueError("%d does not fit in a 64-bit integer" % v)
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError("%r is not a finite number" % v)
        text = repr(v)  # shortest form that reads back exactly: 0.1, 1e-05, 3.0, 1e+16
        if "e" not in text and "." not in text:
            text += ".0"
        return text
    if isinstance(v, str):
        return string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join("%s = %s" % (key(k), value(x)) for k, x in v.items()) + " }" if v else "{}"
    raise TypeError("no TOML form for %r" % (v,))


def table(header, entries):
    """`[header]` then `key = value` lines, the entries whose value is not None."""
    lines = ["[%s]" % ".".join(key(h) for h in header)] if header else []
    for k, v in entries:
        if v is not None:
            lines.append("%s = %s" % (key(k), value(v)))
    return "\n".join(lines)
