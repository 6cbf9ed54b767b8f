"""Posting the message to a webhook.

Sending never fails the run it reports on: network errors and timeouts are logged, and a webhook
URL that is not http(s) is refused with a message naming the variable, never its value. The post
follows no redirect (a 3xx is reported, with its Location masked) and has a deadline for the whole
exchange.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from lifecycle.notify.message import WEBHOOK_ENV, build_message, redact, secret_value
from lifecycle.notify.outcome import RunOutcome

log = logging.getLogger(__name__)

WEBHOOK_SECRET = "Secret pipeline-notify, key webhook-url"  # where the cluster's value comes from
POST_TIMEOUT_SECONDS = 10.0
MAX_LOCATION = 200  # characters of a redirect's Location quoted in the report


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
            return (
                False,
                f"webhook at {host} answered HTTP {exc.code} redirecting to {location}; redirects are not followed",
            )
        return False, f"webhook at {host} answered HTTP {exc.code}"
    # Unreachable, timed out, malformed URL: the run's result stands. The URL may have come as an
    # argument rather than from the environment redact reads.
    reason = str(getattr(exc, "reason", exc)).replace(url, "[webhook URL]")
    return False, f"webhook at {host} not reached: {type(exc).__name__}: {redact(reason)}"


def send_notification(
    outcome: RunOutcome, webhook_url: str | None = None, timeout: float = POST_TIMEOUT_SECONDS
) -> dict:
    """Logs the message and, when a webhook is configured ($NOTIFY_WEBHOOK_URL), posts it there."""
    message = build_message(outcome)
    print(message["text"], flush=True)
    if webhook_url is None:
        url, source = secret_value(WEBHOOK_ENV), f"${WEBHOOK_ENV} ({WEBHOOK_SECRET})"
    else:
        url, source = webhook_url.strip(), "the webhook URL"
    if not url:
        return {
            "sent": False,
            "detail": f"no webhook configured (${WEBHOOK_ENV} is empty); message logged only",
            "message": message,
        }
    problem = webhook_problem(url)
    sent, detail = (
        (False, f"{source} {problem}; message logged only") if problem else post_message(url, message, timeout)
    )
    (log.info if sent else log.warning)("notification %s: %s", "sent" if sent else "not sent", detail)
    print(f"notification {'sent' if sent else 'NOT sent'}: {detail}", flush=True)
    return {"sent": sent, "detail": detail, "message": message}
