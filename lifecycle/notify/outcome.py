"""How a pipeline run ended, gathered by its exit task.

The outcome says the run's final state, its name and id, what was registered (read back from the
MLflow registry, where the register step tagged the version with the run id) and, when the run
failed, which step failed as far as it can be known:

- KFP 2.17 hands an exit handler the state of the group it guards, not of the step inside that
  failed: in the cluster the error fields are empty, and kfp.local says "Task exit-handler-1
  failed.". Whatever message there is, is reported.
- When the pipeline root is a local directory (kfp.local), every step that finished wrote its
  executor_output.json there, and a step with output artifacts that failed left its directory
  without one: those are reported as the failed step(s), with the steps that completed.
- In the cluster, the failed step and its log are in the KFP UI; the message says so.
"""

from __future__ import annotations

import logging
import os
import re
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lifecycle.notify.message import redact
from lifecycle.urls import mask_credentials

log = logging.getLogger(__name__)

# MLflow's client retries a request 7 times with exponential back-off by default, about four
# minutes against a tracking server that is down; the message reads the registry with these
# (unless the environment sets them), so a failed run is reported in seconds.
REGISTRY_READ_SETTINGS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}


@dataclass
class RunOutcome:
    """What is known about a finished run, gathered by the exit task."""

    state: str  # SUCCEEDED, FAILED, CANCELLED
    pipeline: str
    job_name: str
    run_id: str
    model_name: str
    error_message: str = ""
    failed_steps: list[str] = field(default_factory=list)
    completed_steps: list[str] | None = None  # None: the pipeline root is not on this disk
    registration: dict[str, Any] | None = None
    registry_problem: str = ""
    tracking_uri: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def final_status(status: Any) -> dict[str, Any]:
    """The fields of a `dsl.PipelineTaskFinalStatus` (or the dict the runner passes)."""
    if isinstance(status, dict):
        error = status.get("error") or {}
        return {
            "state": status.get("state") or "UNKNOWN",
            "task": status.get("pipeline_task_name") or status.get("pipelineTaskName") or "",
            "error_message": status.get("error_message") or error.get("message") or "",
        }
    return {
        "state": getattr(status, "state", None) or "UNKNOWN",
        "task": getattr(status, "pipeline_task_name", "") or "",
        "error_message": getattr(status, "error_message", None) or "",
    }


def steps_in_pipeline_root(
    pipeline_root: str, job_name: str, exclude: tuple[str, ...] = ()
) -> tuple[list[str], list[str]] | None:
    """(completed, unfinished) steps of a run whose pipeline root is a local directory, else None.

    kfp.local keeps `<root>/<job name>/<task>/` per step (inside `for-loop-*-iteration-*/` for
    ParallelFor iterations) and writes executor_output.json there when the step succeeds. A
    directory without it belongs to a step that started and did not finish.
    """
    if not pipeline_root or "://" in pipeline_root or not job_name:
        return None
    run_dir = Path(pipeline_root) / job_name
    if not run_dir.is_dir():
        return None
    task_dirs = []
    for child in sorted(run_dir.iterdir()):
        if not child.is_dir():
            continue
        iteration = re.fullmatch(r"for-loop-\d+-iteration-(\d+)", child.name)
        if iteration:
            task_dirs += [(f"{t.name} (iteration {iteration[1]})", t) for t in sorted(child.iterdir()) if t.is_dir()]
        else:
            task_dirs.append((child.name, child))
    completed, unfinished = [], []
    for name, path in task_dirs:
        if path.name in exclude:
            continue
        done = path / "executor_output.json"
        if done.exists():
            completed.append((done.stat().st_mtime, name))
        else:
            unfinished.append(name)
    return [name for _, name in sorted(completed)], unfinished


def registered_by_run(model_name: str, run_id: str, client=None) -> dict[str, Any] | None:
    """The latest version of `model_name` tagged with this pipeline run's id, as the registry has it now."""
    from mlflow import MlflowClient

    client = client or MlflowClient()
    escaped = run_id.replace("'", "")
    versions = client.search_model_versions(f"name='{model_name}' and tags.pipeline_run_id='{escaped}'")
    if not versions:
        return None
    latest = max(versions, key=lambda v: int(v.version))
    version = client.get_model_version(model_name, latest.version)  # search results may omit aliases
    metrics = dict(client.get_run(version.run_id).data.metrics) if version.run_id else {}
    return {
        "model_name": model_name,
        "version": str(version.version),
        "model_uri": f"models:/{model_name}/{version.version}",
        "aliases": sorted(version.aliases),
        "promotion": version.tags.get("promotion", ""),
        # lifecycle.registry.policy's APPROVAL_TAG and PENDING, not imported: that pulls in the trainer.
        "awaiting_approval": version.tags.get("approval") == "pending",
        "metrics": metrics,
        "run_id": version.run_id,
    }


@contextmanager
def _environment_defaults(values: dict[str, str]):
    """Sets the variables the environment leaves unset, for the duration of the block."""
    added = [name for name in values if name not in os.environ]
    os.environ.update({name: values[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def gather_outcome(
    status: Any,
    model_name: str,
    run_id: str,
    job_name: str,
    pipeline: str = "training",
    pipeline_root: str = "",
    exit_task: str = "",
    client=None,
) -> RunOutcome:
    """Everything the message needs; a registry that cannot be read is reported, not raised."""
    fields = final_status(status)
    outcome = RunOutcome(fields["state"], pipeline, job_name, run_id, model_name, error_message=fields["error_message"])
    steps = steps_in_pipeline_root(pipeline_root, job_name, exclude=(exit_task,) if exit_task else ())
    if steps is not None:
        outcome.completed_steps, unfinished = steps
        if outcome.state != "SUCCEEDED":
            outcome.failed_steps = unfinished
    try:
        import mlflow

        outcome.tracking_uri = mask_credentials(mlflow.get_tracking_uri())
        with _environment_defaults(REGISTRY_READ_SETTINGS):
            outcome.registration = registered_by_run(model_name, run_id, client)
    except Exception as exc:  # the notification still goes out, saying what could not be read
        outcome.registry_problem = redact(f"{type(exc).__name__}: {exc}")  # MLflow's errors quote the URI
        log.warning("could not read the registry: %s", outcome.registry_problem)
    return outcome
