"""Sends everything a run prints to a log file: Python's sys.stdout/sys.stderr line by line, and
whatever writes to file descriptors 1 and 2 directly (C extensions, inherited child processes)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

# kfp.local colours task names and statuses; a log file read in an editor is better without.
ANSI_CODES = re.compile(r"\x1b\[[0-9;]*m")


class LineStream(io.TextIOBase):
    """A text stream handing each complete line to `emit` in the thread that wrote it.

    Lines are assembled per thread: kfp.local prints a task's output from that task's worker thread,
    a few write calls per line, and concurrent tasks would otherwise interleave mid-line.
    """

    encoding = "utf-8"
    errors = "replace"

    def __init__(self, emit: Callable[[str], None], fd: int) -> None:
        super().__init__()
        self._emit = emit
        self._fd = fd
        self._partial: dict[int, str] = {}
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        ident = threading.get_ident()
        with self._lock:
            *lines, rest = (self._partial.pop(ident, "") + text).split("\n")
            if rest:
                self._partial[ident] = rest
        for line in lines:
            self._emit(line)
        return len(text)

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        # Code handing sys.stdout to a child process gets the descriptor that now leads to the log.
        return self._fd

    def close(self) -> None:
        with self._lock:
            rest, self._partial = list(self._partial.values()), {}
        for line in rest:
            self._emit(line)
        super().close()


@contextlib.contextmanager
def terminal(stream: TextIO) -> Iterator[TextIO]:
    """A writer that still reaches `stream`'s destination while descriptors 1 and 2 lead to a log.

    A stream that is not descriptor 1 or 2 (pytest's capsys, say) is not redirected, so it is used as is.
    """
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    if fd not in (1, 2):
        yield stream
        return
    stream.flush()
    with open(os.dup(fd), "w", buffering=1, encoding=stream.encoding or "utf-8", errors="replace") as out:
        yield out


def open_log(directory: Path, stem: str) -> Path:
    """A new, empty log file `stem.log` in `directory`, or `stem-N.log` if that is taken."""
    directory.mkdir(parents=True, exist_ok=True)
    for n in range(1000):
        path = directory / (f"{stem}.log" if n == 0 else f"{stem}-{n}.log")
        try:
            path.open("x").close()
            return path.resolve()
        except FileExistsError:
            continue
    raise FileExistsError(f"no free log file name for {stem} in {directory}")


@contextlib.contextmanager
def captured(log_path: Path, on_line: Callable[[str], None], echo: TextIO | None = None) -> Iterator[None]:
    """Everything printed inside goes to `log_path`.

    Each line written through sys.stdout/sys.stderr is also passed to `on_line` (in the writing thread)
    and copied to `echo` if given. Writes straight to descriptors 1 and 2 reach the log file only.
    """
    lock = threading.Lock()
    with open(log_path, "ab", buffering=0) as log:

        def emit(line: str) -> None:
            with lock:
                log.write(ANSI_CODES.sub("", line).encode("utf-8", "replace") + b"\n")
                if echo is not None:
                    echo.write(line + "\n")
                    echo.flush()
            on_line(line)

        streams = sys.stdout, sys.stderr
        for stream in (*streams, sys.__stdout__, sys.__stderr__):
            if stream is not None:
                stream.flush()
        # kfp.local swaps the root logger's handlers per task; concurrent tasks can leave one behind
        # that writes to our stream after it is closed.
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        saved = {fd: os.dup(fd) for fd in (1, 2)}
        ours = LineStream(emit, 1), LineStream(emit, 2)
        try:
            for fd in saved:
                os.dup2(log.fileno(), fd)
            sys.stdout, sys.stderr = ours
            yield
        finally:
            sys.stdout, sys.stderr = streams
            root.handlers[:] = handlers
            root.setLevel(level)
            for stream in ours:
                stream.close()
            for stream in (sys.__stdout__, sys.__stderr__):
                if stream is not None:
                    stream.flush()
            for fd, original in saved.items():
                os.dup2(original, fd)
                os.close(original)
