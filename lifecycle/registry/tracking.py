"""The tracking server a registration writes to, waited for before anything is written."""

from __future__ import annotations

import logging
import os
import time
import urllib.error
import urllib.request

from lifecycle.registry.errors import RegistrationError
from lifecycle.urls import mask_credentials

log = logging.getLogger(__name__)

# How long register waits for an unreachable tracking server before failing (seconds).
TRACKING_WAIT_ENV = "TRACKING_SERVER_WAIT_SECONDS"
DEFAULT_TRACKING_WAIT = 120.0


def tracking_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise RegistrationError("MLFLOW_TRACKING_URI is not set: the register step needs a tracking server or store")
    return uri


def wait_for_tracking_server(uri: str, budget: float | None = None) -> None:
    """Returns once an http(s) tracking server answers its health check.

    Any answer below 500 counts (a server behind an auth proxy may refuse /health itself);
    connection errors, timeouts and 5xx (a proxy in front of a restarting server) are retried,
    with exponential backoff (1 s doubling, at most 15 s apart) for `budget` seconds
    (default: $TRACKING_SERVER_WAIT_SECONDS or 120), then fails naming the URI. Nothing has been
    written to the registry at that point. Database and file stores need no wait.
    """
    if not uri.startswith(("http://", "https://")):
        return
    if budget is None:
        budget = float(os.environ.get(TRACKING_WAIT_ENV) or DEFAULT_TRACKING_WAIT)
    started = time.monotonic()
    delay, attempts = 1.0, 0
    while True:
        attempts += 1
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=10):
                return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
            problem = f"health check answered HTTP {exc.code}"
        except (OSError, urllib.error.URLError) as exc:
            problem = mask_credentials(str(getattr(exc, "reason", exc)))
        waited = time.monotonic() - started
        if waited + delay > budget:
            raise RegistrationError(
                f"MLflow tracking server {mask_credentials(uri)} unreachable after {attempts} attempts over "
                f"{waited:.0f} s "
                f"({problem}); nothing was registered"
            )
        log.warning(
            "MLflow tracking server %s unreachable (%s); retrying in %.0f s", mask_credentials(uri), problem, delay
        )
        time.sleep(delay)
        delay = min(delay * 2, 15.0)
