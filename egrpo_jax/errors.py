"""Errors that end a command with one line (see cli.main); no heavy imports here.

Bad input (config, data, model files, paths) raises ValueError / OSError subclasses where the
wrong value is first seen, naming the file:line, key or field. `RunError` is an operational
failure of a run that was set up correctly: a search outage, a checkpoint that cannot be written.
"""

from __future__ import annotations


class RunError(RuntimeError):
    """A run stopped for a reason outside the program (the message says which and where)."""


def one_line(e: BaseException) -> str:
    """The message of `e` on one line: OSErrors name their path, multi-line messages keep line 1."""
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        msg = f"{e.filename}: {e.strerror}"
        if e.filename2 is not None:
            msg += f" (-> {e.filename2})"
    else:
        msg = str(e).strip() or type(e).__name__
        if isinstance(e, KeyError) and e.args:
            msg = str(e.args[0])
    lines = msg.splitlines()
    return lines[0] + (" ..." if len(lines) > 1 else "") if lines else type(e).__name__
