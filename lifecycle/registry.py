"""Registering a trained model in MLflow and promoting it only when it is better.

The registered artifact is the whole sklearn pipeline (featurizer + estimator) in skops format,
with a signature inferred from the training frame, so a server needs only the raw columns.
A new version always gets alias `challenger`; `champion` moves to it only when it beats the
current champion on the same holdout by the configured margin. That decision is taken under a
lock kept in the registry, so registrations running at once cannot both move `champion`.
An unreachable tracking server is waited for, for a bounded time, before anything is written.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lifecycle.config import METRIC_DIRECTIONS, DatasetConfig
from lifecycle.evaluation import holdout_metrics
from lifecycle.features import features_and_target

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"

# Types skops may load beyond its defaults. Anything else in a model is refused at logging time,
# so an unreviewed class never reaches the registry.
TRUSTED_MODEL_TYPES = frozenset(
    {
        "lifecycle.features.PrepareInputs",
        "numpy.dtype",
        # MLflow leaves this out by default because its node indices are unchecked; the models
        # here are our own.
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    }
)
# What a server needs to load the model: the same versions that trained it.
MODEL_REQUIREMENTS = ("scikit-learn", "skops", "numpy", "pandas", "scipy")

# How long register waits for an unreachable tracking server before failing (seconds).
TRACKING_WAIT_ENV = "TRACKING_SERVER_WAIT_SECONDS"
DEFAULT_TRACKING_WAIT = 120.0
# A promotion lock older than this was left by a registration that died; it is broken. The
# locked section scores the champion on one holdout and makes a handful of registry writes:
# seconds for these models, so two minutes is far beyond a live holder.
LOCK_STALE_SECONDS = 120.0
# How long a registration waits for the lock. Longer than the stale limit plus one poll, so a
# lock left by a dead registration is always broken by a waiter rather than failing it.
LOCK_WAIT_SECONDS = 300.0


class RegistrationError(RuntimeError):
    """The model could not be registered; the registry is left as it was."""


@dataclass
class Promotion:
    promote: bool
    reason: str
    metric: str
    challenger_value: float
    champion_version: str | None = None
    champion_value: float | None = None


@dataclass
class Registration:
    model_name: str
    version: str
    run_id: str
    model_uri: str
    aliases: list[str] = field(default_factory=list)
    promotion: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
            problem = str(getattr(exc, "reason", exc))
        waited = time.monotonic() - started
        if waited + delay > budget:
            raise RegistrationError(
                f"MLflow tracking server {uri} unreachable after {attempts} attempts over {waited:.0f} s "
                f"({problem}); nothing was registered"
            )
        log.warning("MLflow tracking server %s unreachable (%s); retrying in %.0f s", uri, problem, delay)
        time.sleep(delay)
        delay = min(delay * 2, 15.0)


@contextmanager
def promotion_lock(client, model_name: str, wait: float | None = None):
    """One promotion decision at a time for `model_name`, across processes and machines.

    The registry has no compare-and-set for aliases: two registrations deciding at once would both
    compare against the same champion, and the worse one could move `champion` last. Creating a
    registered model is atomic (names are unique), so a registered model named
    `<model_name>.promotion-lock` is the lock, deleted on release. A lock older than
    LOCK_STALE_SECONDS was left by a registration that died, and is broken (_break_stale_lock);
    `wait` defaults to LOCK_WAIT_SECONDS.
    """
    from mlflow.exceptions import MlflowException

    if wait is None:
        wait = LOCK_WAIT_SECONDS
    lock = f"{model_name}.promotion-lock"
    deadline = time.monotonic() + wait
    delay = 0.2
    while True:
        try:
            client.create_registered_model(lock, description=f"held by {socket.gethostname()} pid {os.getpid()}")
            break
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        if _break_stale_lock(client, lock):
            continue
        if time.monotonic() > deadline:
            raise RegistrationError(f"another registration of {model_name} held the promotion lock {lock!r} for over {wait:.0f} s")
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
    try:
        yield
    finally:
        try:
            client.delete_registered_model(lock)
        except Exception as exc:  # it goes stale and is broken later; the registration stands
            log.error("could not release promotion lock %s: %s", lock, exc)


def _break_stale_lock(client, lock: str) -> bool:
    """Deletes `lock` if the registry's clock says it is older than LOCK_STALE_SECONDS; True if it did.

    Waiters that find the same stale lock must not each delete "the lock" by name: the slower one
    would delete the lock the faster one has just taken. So a breaker first claims that lock by
    creating `<lock>.break-<its creation time>` (atomic: one claim per lock), checks that the lock
    is still the one it claimed, deletes it, then its claim. The claim's creation time, stamped by
    the registry, is the "now" the lock's age is measured against: a waiter whose clock runs ahead
    does not break a live lock. A claim left by a breaker that died is removed once it is stale.
    """
    from mlflow.exceptions import MlflowException

    try:
        held = client.get_registered_model(lock)
    except MlflowException:  # released meanwhile
        return False
    if time.time() - held.creation_timestamp / 1000 <= LOCK_STALE_SECONDS:  # by this clock; confirmed by the registry's below
        return False
    claim = f"{lock}.break-{held.creation_timestamp}"
    try:
        claimed_at = client.create_registered_model(claim, description=f"breaking {lock}: {held.description}").creation_timestamp
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        _remove_stale_claim(client, claim)
        return False
    try:
        current = client.get_registered_model(lock)
        age = (claimed_at - held.creation_timestamp) / 1000
        if current.creation_timestamp != held.creation_timestamp or age <= LOCK_STALE_SECONDS:
            return False
        log.warning("breaking promotion lock %s: %s, taken %.0f s ago", lock, held.description, age)
        client.delete_registered_model(lock)
        return True
    except MlflowException:  # released meanwhile
        return False
    finally:
        try:
            client.delete_registered_model(claim)
        except MlflowException as exc:  # it goes stale and is removed by a later waiter
            log.error("could not remove promotion lock claim %s: %s", claim, exc)


def _remove_stale_claim(client, claim: str) -> None:
    """A claim lives for the few requests of one break; an old one was left by a breaker that died."""
    from mlflow.exceptions import MlflowException

    try:
        if time.time() - client.get_registered_model(claim).creation_timestamp / 1000 > LOCK_STALE_SECONDS:
            log.warning("removing promotion lock claim %s left by a breaker that died", claim)
            client.delete_registered_model(claim)
    except MlflowException:  # removed meanwhile
        pass


def beats(challenger: float, champion: float, metric: str, margin: float) -> bool:
    """Strictly better by more than `margin`: an equal model never displaces the champion."""
    if METRIC_DIRECTIONS[metric] == "min":
        return champion - challenger > margin
    return challenger - champion > margin


def decide_promotion(client, model_name: str, test: pd.DataFrame, config: DatasetConfig, metrics: dict[str, float], margin: float) -> Promotion:
    """Scores the current champion on this run's holdout and compares it with the challenger."""
    import mlflow.sklearn
    from mlflow.exceptions import MlflowException

    metric = config.registry.metric
    if metric not in metrics:
        raise RegistrationError(f"evaluation produced no {metric!r}; it produced {sorted(metrics)}")
    value = metrics[metric]
    try:
        champion = client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return Promotion(True, "no champion yet", metric, value)
    try:
        champion_model = mlflow.sklearn.load_model(f"models:/{model_name}/{champion.version}")
        champion_value = holdout_metrics(champion_model, test, config)[metric]
    except Exception as exc:  # a champion that cannot score this holdout keeps its place
        log.warning("champion v%s could not be scored on this holdout: %s", champion.version, exc)
        return Promotion(False, f"champion v{champion.version} could not be scored on this holdout ({exc}); kept", metric, value, str(champion.version))
    promote = beats(value, champion_value, metric, margin)
    verdict = "beats" if promote else "does not beat"
    reason = f"{metric} {value:.5f} {verdict} champion v{champion.version} {champion_value:.5f} by more than {margin:g}"
    return Promotion(promote, reason, metric, value, str(champion.version), champion_value)


def trusted_types_for(model) -> list[str]:
    import skops.io

    found = set(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
    unknown = found - TRUSTED_MODEL_TYPES
    if unknown:
        raise RegistrationError(f"model holds types skops does not trust and this project has not reviewed: {sorted(unknown)}")
    return sorted(found)


def model_signature(model, train: pd.DataFrame, config: DatasetConfig):
    """Inferred from the whole training frame, whose dtypes `process_frame` fixed deliberately."""
    from mlflow.models import infer_signature

    X, _ = features_and_target(train, config)
    return infer_signature(X, model.predict(X.head(50)))


def _pinned_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in MODEL_REQUIREMENTS]


def register_model(
    model,
    train: pd.DataFrame,
    test: pd.DataFrame,
    config: DatasetConfig,
    metrics: dict[str, float],
    model_name: str,
    margin: float,
    lineage: dict[str, str],
    artifacts: dict[str, Path],
    params: dict[str, Any],
) -> Registration:
    """Logs, registers and aliases the model; on any failure after the version exists, removes it."""
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient

    uri = tracking_uri()
    if config.registry.metric not in metrics:
        raise RegistrationError(f"evaluation produced no {config.registry.metric!r}; it produced {sorted(metrics)}")
    trusted = trusted_types_for(model)
    signature = model_signature(model, train, config)
    X_train, _ = features_and_target(train, config)

    wait_for_tracking_server(uri)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    mlflow.set_experiment(model_name)
    tags = {**lineage, "dataset": config.name, "task": config.task}
    with mlflow.start_run(run_name=f"{model_name}-{lineage.get('pipeline_run_id') or 'local'}", tags=tags) as run:
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        mlflow.log_dict(config.model_dump(mode="json"), "config.json")
        for file_name, path in artifacts.items():
            mlflow.log_text(path.read_text(), f"reports/{file_name}")
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            serialization_format="skops",
            skops_trusted_types=trusted,
            signature=signature,
            input_example=X_train.head(5),
            pip_requirements=_pinned_requirements(),
        )
        try:
            version = mlflow.register_model(info.model_uri, model_name, tags={**tags, **{k: f"{v:.6g}" for k, v in metrics.items()}})
        except Exception as exc:
            # The server may have created the version before the failure reached us.
            for orphan in _versions_of_run(client, model_name, run.info.run_id):
                _withdraw(client, model_name, orphan, {})
            raise RegistrationError(f"registering {model_name} from run {run.info.run_id} failed: {exc}") from exc
        withdrawn = False
        try:
            with promotion_lock(client, model_name):
                previous: dict[str, str | None] = {}
                try:
                    # Decided under the lock, against the champion as it is now.
                    promotion = decide_promotion(client, model_name, test, config, metrics, margin)
                    previous = {alias: _alias_version(client, model_name, alias) for alias in (CHAMPION, CHALLENGER)}
                    client.set_registered_model_alias(model_name, CHALLENGER, version.version)
                    client.set_model_version_tag(model_name, version.version, "promotion", promotion.reason)
                    mlflow.set_tags({"registered_version": version.version, "promoted": str(promotion.promote).lower()})
                    mlflow.end_run()
                    aliases = [CHALLENGER]
                    # Moved last, so a registration that fails never leaves champion on its version.
                    if promotion.promote:
                        client.set_registered_model_alias(model_name, CHAMPION, version.version)
                        aliases.append(CHAMPION)
                except Exception:
                    # Undone under the lock: no other registration can have moved an alias since.
                    withdrawn = True
                    _withdraw(client, model_name, version.version, previous)
                    if mlflow.active_run() is None:  # already ended, so leaving `start_run` will not mark it failed
                        _mark_failed(client, run.info.run_id)
                    raise
        except Exception as exc:
            if not withdrawn:  # the lock was never taken, so no alias was touched
                _withdraw(client, model_name, version.version, {})
            raise RegistrationError(f"registering {model_name} v{version.version} failed and was rolled back: {exc}") from exc
    return Registration(
        model_name=model_name,
        version=str(version.version),
        run_id=run.info.run_id,
        model_uri=f"models:/{model_name}/{version.version}",
        aliases=aliases,
        promotion=asdict(promotion),
        metrics=metrics,
    )


def _alias_version(client, model_name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException:
        return None


def _versions_of_run(client, model_name: str, run_id: str) -> list[str]:
    try:
        return [str(v.version) for v in client.search_model_versions(f"name='{model_name}' and run_id='{run_id}'")]
    except Exception as exc:
        log.error("could not look for versions of %s from run %s: %s", model_name, run_id, exc)
        return []


def _withdraw(client, model_name: str, version: str, previous: dict[str, str | None]) -> None:
    """Best effort: aliases return to the versions in `previous` (None: no alias), then the version goes.

    Aliases come first and each step is tried on its own, so a registry failing midway still leaves
    champion where it was; deleting the version also deletes any alias still pointing at it.
    The original failure is the one worth raising, so failures here are only logged.
    """
    for alias, earlier in previous.items():
        try:
            if _alias_version(client, model_name, alias) == earlier:
                continue
            if earlier is None:
                client.delete_registered_model_alias(model_name, alias)
            else:
                client.set_registered_model_alias(model_name, alias, earlier)
        except Exception as exc:
            log.error("could not put alias %s of %s back on v%s: %s", alias, model_name, earlier, exc)
    try:
        client.delete_model_version(model_name, version)
    except Exception as exc:
        log.error("could not withdraw %s v%s: %s", model_name, version, exc)


def _mark_failed(client, run_id: str) -> None:
    try:
        client.set_terminated(run_id, "FAILED")
    except Exception as exc:
        log.error("could not mark run %s failed: %s", run_id, exc)
