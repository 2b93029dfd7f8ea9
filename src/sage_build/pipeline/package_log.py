"""Per-package logs.

Every line a package's build prints goes to ``logs/pkgs/<pkg>-<version>.log``
prefixed ``[pkg-version] ``; the same lines reach the terminal when asked (``V=1``, or
standard output is not a terminal: :func:`sage_build.face.settings.echo_to_terminal`), or only
the warnings among them (``echo_warnings``: sage-progress's one line a package, off a terminal).
(The machine-readable events are :mod:`sage_build.base.events`.)
"""

from __future__ import annotations

import re
import subprocess
from collections import deque
from pathlib import Path
from typing import Callable, Mapping, Sequence, TextIO

from sage_build.base.jobserver import open_fds

# A warning worth showing when the build's other lines are not: a line that starts with it
# (ours, the build backend's, pip's, SAGE_CHECK=warn's); a compiler's "file.c:1: warning:" stays in the log.
WARNING_LINE = re.compile(r"(?i)^\s*(\*\*\* )?warning\b")


class PackageLog:
    """The log of one package build."""

    def __init__(self, path: Path, tag: str, echo: bool, stream: TextIO | None = None,
                 echo_warnings: bool = False):
        """``echo``: the lines reach ``stream`` (the face's standard output) too (the face decides:
        ``face.settings.echo_to_terminal``); ``echo_warnings``: only the :data:`WARNING_LINE` ones do.
        Without a ``stream`` (standard output closed, as under a make run with ``>&-``) they are only
        logged."""
        self.path = path
        self.tag = tag
        self.echo = echo
        self.echo_warnings = echo_warnings
        self.stream = stream
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a", encoding="utf-8", errors="replace")
        self._tail: deque[str] = deque(maxlen=200)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "PackageLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def line(self, text: str, *, always: bool = False) -> None:
        """Log one line (several if ``text`` has newlines)."""
        for part in text.rstrip("\n").split("\n"):
            prefixed = f"[{self.tag}] {part}" if self.tag else part
            self._file.write(prefixed + "\n")
            self._tail.append(part)
            if self.stream is not None and (self.echo or always or (self.echo_warnings and WARNING_LINE.match(part))):
                self.stream.write(prefixed + "\n")
                self.stream.flush()
        self._file.flush()

    def run(self, command: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None,
            started: Callable[[subprocess.Popen], None] | None = None) -> int:
        """Run a command with its output (stdout and stderr) going to the log; return the exit code.

        ``started`` is called with the process as soon as it runs (to stop it from elsewhere).
        The jobserver that ``env``'s MAKEFLAGS names stays open in the command: its sub-makes share it."""
        self.line("$ " + " ".join(str(c) for c in command))
        try:
            process = subprocess.Popen(
                [str(c) for c in command], cwd=cwd, env=dict(env) if env is not None else None,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                text=True, errors="replace", bufsize=1, pass_fds=open_fds(env) if env is not None else (),
            )
        except OSError as error:
            self.line(f"cannot run {command[0]}: {error}")
            return 127
        assert process.stdout is not None
        if started is not None:
            started(process)
        for output in process.stdout:
            self.line(output)
        return process.wait()

    def tail(self, lines: int = 120) -> str:
        return "\n".join(list(self._tail)[-lines:])

