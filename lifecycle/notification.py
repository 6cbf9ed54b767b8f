"""Telling people how a pipeline run ended: a Slack-compatible message to a webhook.

The message says the run's final state, its name and id, what was registered (read back from the
MLflow registry, where the register step tagged the version with the run id) and, when the run
failed, which step failed as far as it can be known:

- KFP 2.17 hands an exit handler the state of the group it guards, not of the step inside that
  failed: in the cluster the error fields are empty, and kfp.local says "Task exit-handler-1
  failed.". Whatever message there is, is reported.
- When the pipeline root is a local directory (kfp.local), every step that finished wrote its
  executor_output.json there, and a step with output artifacts that failed left its directory
  without one: those are reported as the failed step(s), with the steps that completed.
- In the cluster, the failed step and its log are in the KFP UI; the message says so.

Sending never fails the run it reports on: network errors and timeouts are logged, and a webhook
URL that is not http(s) is refused with a message naming the variable, never its value. The post
follows no redirect (a 3xx is reported, with its Location masked) and has a deadline for the whole
exchange. Nothing in the message comes from the environment, URLs in it have their credentials and
query values masked (lifecycle.urls), and the values in it are escaped so that Slack shows them as
text (no mentions, no links).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lifecycle.urls import mask_credentials

log = logging.getLogger(__name__)

WEBHOOK_ENV = "NOTIFY_WEBHOOK_URL"
WEBHOOK_SECRET = "Secret pipeline-notify, key webhook-url"  # where the cluster's value comes from
POST_TIMEOUT_SECONDS = 10.0
# Values of these variables are masked wherever they would appear in a message.
SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", WEBHOOK_ENV, "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
# MLflow's client retries a request 7 times with exponential back-off by default, about four
# minutes against a tracking server that is down; the message reads the registry with these
# (unless the environment sets them), so a failed run is reported in seconds.
REGISTRY_READ_SETTINGS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}
# Slack refuses a section with more than 10 fields or a text over 3000 characters.
MAX_FIELDS = 10
MAX_TEXT = 2900
MAX_LOCATION = 200  # characters of a redirect's Location quoted in the report


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


# ---- gathering -------------------------------------------------------------------------------------


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


def steps_in_pipeline_root(pipeline_root: str, job_name: str, exclude: tuple[str, ...] = ()) -> tuple[list[str], list[str]] | None:
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


# ---- the message -------------------------------------------------------------------------------


def secret_value(name: str, environ: dict[str, str] | None = None) -> str:
    """A variable's value as it is used and as it is masked: a Secret made with
    `kubectl create secret --from-file` keeps the file's trailing newline."""
    environ = os.environ if environ is None else environ
    return (environ.get(name) or "").strip()


def redact(text: str, environ: dict[str, str] | None = None) -> str:
    text = str(text)
    # Values first: masking URLs first would change a secret URL's query and leave the rest
    # (a Slack webhook's path is its token) unmatched. A URL may also be quoted without its query.
    for name in SECRET_ENV:
        value = secret_value(name, environ)
        for form in dict.fromkeys((value, mask_credentials(value), value.partition("?")[0])):
            if len(form) >= 4:
                text = text.replace(form, f"[{name}]")
    return mask_credentials(text)


def slack_escape(text: str) -> str:
    """Text that Slack shows as written: it reads <...> as links and mentions (<!channel>, <@U123>)
    and & as the start of an entity. Applied once, to each value, so nothing is escaped twice."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def format_metric(value: float) -> str:
    """0.1076, 0.9364, 22,587: four significant digits, thousands as whole numbers."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _truncate(text: str) -> str:
    """At most MAX_TEXT characters, not ending inside an entity (`&am`) that escaping made."""
    if len(text) <= MAX_TEXT:
        return text
    cut = text[:MAX_TEXT]
    amp = cut.rfind("&", MAX_TEXT - 4)
    return cut[:amp] if amp != -1 and ";" not in cut[amp:] else cut


def _field(label: str, value: str) -> dict:
    return {"type": "mrkdwn", "text": _truncate(f"*{label}*\n{value}")}


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _truncate(text)}}


def build_message(outcome: RunOutcome, environ: dict[str, str] | None = None) -> dict:
    """A Slack-compatible payload: `text` (the notification line, complete on its own) and `blocks`.

    Every value that comes from the run (names, ids, error text, registry fields) goes through
    `clean`, once: secrets masked, then escaped; the formatting around the values is the message's own.
    """

    def clean(value) -> str:
        return slack_escape(redact(value, environ))

    succeeded = outcome.state == "SUCCEEDED"
    icon = ":white_check_mark:" if succeeded else ":x:"
    verb = "succeeded" if succeeded else clean(outcome.state.lower()) if outcome.state else "ended"
    headline = f"{clean(outcome.pipeline)} run {clean(outcome.job_name)} {verb}"
    registration = outcome.registration
    lines = [f"{icon} {headline} (run id {clean(outcome.run_id)})."]
    metrics_line = None  # in the blocks the metrics are fields
    fields = []
    if registration:
        aliases = ", ".join(clean(alias) for alias in registration["aliases"]) or "none"
        metrics = [(clean(k), format_metric(v)) for k, v in sorted((registration.get("metrics") or {}).items())]
        metric_text = ", ".join(f"{k} {v}" for k, v in metrics)
        lines.append(f"Registered {clean(registration['model_name'])} version {clean(registration['version'])} (aliases: {aliases}).")
        if metric_text:
            metrics_line = f"Holdout metrics: {metric_text}."
            lines.append(metrics_line)
        if registration.get("promotion"):
            lines.append(f"Promotion: {clean(registration['promotion'])}.")
        fields += [_field("Model", f"`{clean(registration['model_uri'])}`"), _field("Aliases", aliases)]
        fields += [_field(k, v) for k, v in metrics]
    elif succeeded:
        lines.append(f"No version of {clean(outcome.model_name)} tagged with this run was found in the registry.")
    if outcome.registry_problem:
        lines.append(f"The registry could not be read: {clean(outcome.registry_problem)}")
    if not succeeded:
        if outcome.failed_steps:
            lines.append(f"Failed step: {', '.join(clean(step) for step in outcome.failed_steps)} (its own message is in its log).")
        elif outcome.completed_steps is not None:
            lines.append("The failed step left no trace in the pipeline root (a step without output artifacts); its message is in its log.")
        else:
            lines.append("The failed step and its log are shown on the run in the KFP UI.")
        if outcome.error_message:
            lines.append(f"Reported error: {clean(outcome.error_message)}")
        if outcome.completed_steps:
            lines.append(f"Completed steps: {', '.join(clean(step) for step in outcome.completed_steps)}.")
    # The values are clean already; redacting the whole again (it is idempotent) guards a line
    # added later without `clean`.
    text = redact("\n".join(lines), environ)
    blocks = [_section(redact(f"{icon} *{headline}*", environ))]
    body_lines = [redact(line, environ) for line in lines[1:] if line is not metrics_line]
    if body_lines:
        blocks.append(_section("\n".join(body_lines)))
    if fields:
        blocks.append({"type": "section", "fields": [dict(f, text=redact(f["text"], environ)) for f in fields[:MAX_FIELDS]]})
    context = f"run id `{clean(outcome.run_id)}` · model `{clean(outcome.model_name)}`"
    if outcome.tracking_uri:
        context += f" · MLflow {clean(outcome.tracking_uri)}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _truncate(redact(context, environ))}]})
    return {"text": _truncate(text), "blocks": blocks}


# ---- sending -------------------------------------------------------------------------------------


def webhook_problem(url: str) -> str:
    """Why `url` cannot be posted to, without repeating any of it (it is a secret); "" if it can.

    A URL without a scheme is refused, not completed with https://: guessing where a secret
    goes is worse than a message that says what to fix.
    """
    if any(c.isspace() or not c.isprintable() for c in url):
        return "contains whitespace or control characters"
    try:
        parts = urllib.parse.urlsplit(url)
        hostname = parts.hostname
    except ValueError:
        return "is not a valid URL"
    if parts.scheme.lower() not in ("http", "https"):
        return "does not start with https:// (or http://)"
    if not hostname:
        return "has no host"
    return ""


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A webhook that redirects is misconfigured or hostile: the message (and the POST's destination)
    must not move to a host the Secret does not name. urllib raises the 3xx as an HTTPError instead."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_RefuseRedirects)


def _post(request: urllib.request.Request, timeout: float) -> int:
    with _OPENER.open(request, timeout=timeout) as response:
        return response.status


def post_message(url: str, message: dict, timeout: float = POST_TIMEOUT_SECONDS) -> tuple[bool, str]:
    """POSTs the JSON; returns (delivered, what happened). Never raises, never repeats the URL (it is a secret).

    `timeout` bounds the whole exchange: the socket timeout alone restarts with every byte, so a
    server that drips its answer would hold the exit handler for as long as it likes.
    """
    problem = webhook_problem(url)
    if problem:
        return False, f"webhook URL {problem}"
    host = urllib.parse.urlsplit(url).hostname
    request = urllib.request.Request(
        url, data=json.dumps(message).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    outcome: dict[str, Any] = {}

    def attempt() -> None:
        try:
            outcome["status"] = _post(request, timeout)
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc

    worker = threading.Thread(target=attempt, name="webhook-post", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():  # the daemon thread is abandoned; the process does not wait for it
        return False, f"webhook at {host} not reached: no complete answer within {timeout:g} s"
    exc = outcome.get("error")
    if exc is None:
        return True, f"webhook at {host} answered HTTP {outcome['status']}"
    if isinstance(exc, urllib.error.HTTPError):
        if 300 <= exc.code < 400:
            location = ((exc.headers or {}).get("Location") or "(none)").replace(url, "[webhook URL]")
            location = "".join(c if c.isprintable() else "?" for c in redact(location))[:MAX_LOCATION]
            return False, f"webhook at {host} answered HTTP {exc.code} redirecting to {location}; redirects are not followed"
        return False, f"webhook at {host} answered HTTP {exc.code}"
    # Unreachable, timed out, malformed URL: the run's result stands. The URL may have come as an
    # argument rather than from the environment redact reads.
    reason = str(getattr(exc, "reason", exc)).replace(url, "[webhook URL]")
    return False, f"webhook at {host} not reached: {type(exc).__name__}: {redact(reason)}"


def send_notification(outcome: RunOutcome, webhook_url: str | None = None, timeout: float = POST_TIMEOUT_SECONDS) -> dict:
    """Logs the message and, when a webhook is configured ($NOTIFY_WEBHOOK_URL), posts it there."""
    message = build_message(outcome)
    print(message["text"], flush=True)
    if webhook_url is None:
        url, source = secret_value(WEBHOOK_ENV), f"${WEBHOOK_ENV} ({WEBHOOK_SECRET})"
    else:
        url, source = webhook_url.strip(), "the webhook URL"
    if not url:
        return {"sent": False, "detail": f"no webhook configured (${WEBHOOK_ENV} is empty); message logged only", "message": message}
    problem = webhook_problem(url)
    sent, detail = (False, f"{source} {problem}; message logged only") if problem else post_message(url, message, timeout)
    (log.info if sent else log.warning)("notification %s: %s", "sent" if sent else "not sent", detail)
    print(f"notification {'sent' if sent else 'NOT sent'}: {detail}", flush=True)
    return {"sent": sent, "detail": detail, "message": message}
