"""Follows a kfp.local run task by task: one line per task as it finishes, its full logs in a file, and
the error a failed step raised."""

from __future__ import annotations

import contextlib
import inspect
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tools.capture import captured, terminal

# A failed step's traceback is at the end of its output; the whole output is in the log file.
KEPT_LINES = 400
ERROR_LINES = 12
TRACEBACK = "Traceback (most recent call last):"
ITERATION = re.compile(r"-iteration-(\d+)$")
MODULE_PREFIX = re.compile(r"^(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_]\w*(?::|$))")


@dataclass
class TaskRun:
    name: str
    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0
    status: str = "RUNNING"
    raised: str = ""  # an exception kfp.local itself raised while running the task
    output: deque[str] = field(default_factory=lambda: deque(maxlen=KEPT_LINES))

    def error(self) -> str:
        return self.raised or step_error(list(self.output))


def task_label(task_name: str, pipeline_resource_name: str) -> str:
    """`cross-validate[2]` for a ParallelFor's third iteration, which kfp.local names like the others."""
    iterations = [m[1] for part in pipeline_resource_name.split("/")[1:] if (m := ITERATION.search(part))]
    return task_name + "".join(f"[{i}]" for i in iterations)


def progress_line(task: TaskRun) -> str:
    return f"{task.name:<22} {task.status:<8} {task.seconds:6.1f} s"


def step_error(lines: list[str]) -> str:
    """The exception a step's process died of: the last traceback's closing line(s), without its frames.

    A step's lines carry kfp.local's indent, so frames are told from the message by indenting
    relative to the `File "..."` lines rather than by absolute columns.
    """
    starts = [i for i, line in enumerate(lines) if line.strip() == TRACEBACK]
    if not starts:
        return "\n".join([line.strip() for line in lines if line.strip()][-3:])
    frame_indent = None
    message: list[str] = []
    for line in lines[starts[-1] + 1 :]:
        depth = len(line) - len(line.lstrip())
        if message:
            if not line.strip():
                break
            message.append(line)
        elif line.lstrip().startswith('File "'):
            frame_indent = depth
        elif line.strip() and (frame_indent is None or depth < frame_indent):
            message.append(line)
    return shorten(dedent(message))


def dedent(lines: list[str]) -> list[str]:
    if not lines:
        return []
    indent = lines[0][: len(lines[0]) - len(lines[0].lstrip())]
    return [line[len(indent) :] if line.startswith(indent) else line.lstrip() for line in lines]


def shorten(lines: list[str]) -> str:
    """`DataValidationError: ...` rather than the full module path, and a long message cut short."""
    if not lines:
        return ""
    lines = [MODULE_PREFIX.sub("", lines[0]), *lines[1:]]
    if len(lines) > ERROR_LINES:
        lines = [*lines[: ERROR_LINES - 1], f"... ({len(lines) - ERROR_LINES + 1} more lines in the log)"]
    return "\n".join(line.rstrip() for line in lines)


class Tracker:
    """Times each task kfp.local runs, keeps what its thread prints, and reports it once it finishes."""

    def __init__(self, report: Callable[[TaskRun], None] | None = None) -> None:
        self.tasks: list[TaskRun] = []
        self._running: dict[int, TaskRun] = {}
        self._report = report
        self._lock = threading.Lock()

    def on_line(self, line: str) -> None:
        task = self._running.get(threading.get_ident())
        if task is not None:
            task.output.append(line)

    def failed(self) -> list[TaskRun]:
        return [task for task in self.tasks if task.status == "FAILURE"]

    @contextlib.contextmanager
    def watching(self) -> Iterator[Tracker]:
        """Both of kfp.local's orchestrators run every leaf task through `execute_single_task`, each in
        a worker thread of its own, which is how a printed line is traced back to its task."""
        from kfp.local.orchestrator import task_executor

        original = task_executor.execute_single_task
        signature = inspect.signature(original)

        def execute_single_task(*args, **kwargs):
            call = signature.bind(*args, **kwargs).arguments
            task = TaskRun(task_label(call["task_name"], call["pipeline_resource_name"]))
            return self._run(task, original, args, kwargs)

        task_executor.execute_single_task = execute_single_task
        try:
            yield self
        finally:
            task_executor.execute_single_task = original

    def _run(self, task: TaskRun, execute, args, kwargs):
        ident = threading.get_ident()
        self._running[ident] = task
        self.tasks.append(task)
        try:
            outputs, status = execute(*args, **kwargs)
            task.status = status.name
            return outputs, status
        except Exception as exc:
            task.status = "FAILURE"
            task.raised = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            task.seconds = time.perf_counter() - task.started
            del self._running[ident]
            if self._report is not None:
                with self._lock:
                    self._report(task)


@dataclass
class FollowedRun:
    log: Path
    tracker: Tracker


@contextlib.contextmanager
def follow(log: Path, out: TextIO, verbose: bool = False) -> Iterator[FollowedRun]:
    """Runs the body with all its output in `log`, printing one line per finished task to `out`;
    `verbose` streams the full output to `out` instead."""
    with terminal(out) as screen:

        def report(task: TaskRun) -> None:
            print(progress_line(task), file=screen, flush=True)

        tracker = Tracker(None if verbose else report)
        # Capture first: importing kfp may warn, and that belongs in the log too.
        with captured(log, tracker.on_line, echo=screen if verbose else None), tracker.watching():
            yield FollowedRun(log, tracker)
