"""Telling people how a pipeline run ended: its outcome, as a Slack-compatible message, to a webhook."""

from lifecycle.notify.message import build_message
from lifecycle.notify.outcome import RunOutcome, gather_outcome
from lifecycle.notify.webhook import send_notification

__all__ = ["RunOutcome", "build_message", "gather_outcome", "send_notification"]
