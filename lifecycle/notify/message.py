"""The Slack-compatible message about a run's outcome.

Nothing in it comes from the environment: values of the variables that hold secrets are masked
wherever they would appear, URLs have their credentials and query values masked (lifecycle.urls),
and the values are escaped so that Slack shows them as text (no mentions, no links).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from lifecycle.urls import mask_credentials

if TYPE_CHECKING:
    from lifecycle.notify.outcome import RunOutcome

WEBHOOK_ENV = "NOTIFY_WEBHOOK_URL"
# Values of these variables are masked wherever they would appear in a message.
SECRET_ENV = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    WEBHOOK_ENV,
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
)
# Slack refuses a section with more than 10 fields or a text over 3000 characters.
MAX_FIELDS = 10
MAX_TEXT = 2900


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


def approve_command(model_name: str, version: str) -> str:
    """What a person runs to make a version that awaits approval champion (tools.promotion)."""
    return f"make approve MODEL={model_name} VERSION={version}"


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
        lines.append(
            f"Registered {clean(registration['model_name'])} version {clean(registration['version'])} (aliases: "
            f"{aliases})."
        )
        if metric_text:
            metrics_line = f"Holdout metrics: {metric_text}."
            lines.append(metrics_line)
        if registration.get("promotion"):
            lines.append(f"Promotion: {clean(registration['promotion'])}.")
        if registration.get("awaiting_approval"):
            command = approve_command(clean(registration["model_name"]), clean(registration["version"]))
            lines.append(
                f"Version {clean(registration['version'])} awaits approval: champion did not move. Approve it with "
                f"`{command}` (MLFLOW_TRACKING_URI set to this registry)."
            )
        fields += [_field("Model", f"`{clean(registration['model_uri'])}`"), _field("Aliases", aliases)]
        fields += [_field(k, v) for k, v in metrics]
    elif succeeded:
        lines.append(f"No version of {clean(outcome.model_name)} tagged with this run was found in the registry.")
    if outcome.registry_problem:
        lines.append(f"The registry could not be read: {clean(outcome.registry_problem)}")
    if not succeeded:
        if outcome.failed_steps:
            lines.append(
                f"Failed step: {', '.join(clean(step) for step in outcome.failed_steps)} (its own message is in its "
                "log)."
            )
        elif outcome.completed_steps is not None:
            lines.append(
                "The failed step left no trace in the pipeline root (a step without output artifacts); its message "
                "is in its log."
            )
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
        blocks.append(
            {"type": "section", "fields": [dict(f, text=redact(f["text"], environ)) for f in fields[:MAX_FIELDS]]}
        )
    context = f"run id `{clean(outcome.run_id)}` · model `{clean(outcome.model_name)}`"
    if outcome.tracking_uri:
        context += f" · MLflow {clean(outcome.tracking_uri)}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _truncate(redact(context, environ))}]})
    return {"text": _truncate(text), "blocks": blocks}
