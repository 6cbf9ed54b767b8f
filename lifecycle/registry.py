"""Registering a trained model in MLflow and promoting it only when it is better.

The registered artifact is the whole sklearn pipeline (featurizer + estimator) in skops format,
with a signature inferred from the training frame, so a server needs only the raw columns. The
version is created with the stored model file's sha256 as its `model_sha256` tag, which every later
load checks (lifecycle.registered_model).
A new version always gets alias `challenger`; `champion` moves to it only when it beats the
current champion on the same holdout by the configured margin. The champion is scored before the
promotion lock (lifecycle.promotion_lock) is taken; under the lock the champion is read again and
the aliases move only if it is unchanged, so registrations running at once cannot both move it.

The registry fails closed: only "this alias does not exist" means "no champion". Any other
registry error fails the registration, naming the registry, and whatever it changed is put back.
An unreachable tracking server is waited for, for a bounded time, before anything is written.
"""

from __future__ import annotations

import logging
import os
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lifecycle.config import METRIC_DIRECTIONS, DatasetConfig, check_margin
from lifecycle.evaluation import holdout_metrics
from lifecycle.features import features_and_target
from lifecycle.promotion_lock import PromotionLock
from lifecycle.registered_model import MODEL_SHA256_TAG, load_registered, stored_digest
from lifecycle.serialization import UntrustedModelError, model_bytes
from lifecycle.urls import mask_credentials

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"

# What a server needs to load the model: the same versions that trained it.
MODEL_REQUIREMENTS = ("scikit-learn", "skops", "numpy", "pandas", "scipy")

# How long register waits for an unreachable tracking server before failing (seconds).
TRACKING_WAIT_ENV = "TRACKING_SERVER_WAIT_SECONDS"
DEFAULT_TRACKING_WAIT = 120.0
# How many times a registration decides again when the champion moved while it scored it.
DECISION_ATTEMPTS = 5


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
            problem = mask_credentials(str(getattr(exc, "reason", exc)))
        waited = time.monotonic() - started
        if waited + delay > budget:
            raise RegistrationError(
                f"MLflow tracking server {mask_credentials(uri)} unreachable after {attempts} attempts over {waited:.0f} s "
                f"({problem}); nothing was registered"
            )
        log.warning("MLflow tracking server %s unreachable (%s); retrying in %.0f s", mask_credentials(uri), problem, delay)
        time.sleep(delay)
        delay = min(delay * 2, 15.0)


def alias_version(client, model_name: str, alias: str) -> str | None:
    """The version `alias` points at; None only when the registry says the alias does not exist.

    MLflow answers an absent alias with INVALID_PARAMETER_VALUE "Registered model alias X not
    found." and an absent model with RESOURCE_DOES_NOT_EXIST "Registered Model with name=X not
    found" (the same over REST, prefixed with the code). The codes alone are not enough: MLflow
    derives them from the HTTP status when a body is not MLflow's (a proxy's 404 or 400).
    Anything else (a refusal, a server error, a timeout) is raised: it says nothing about the alias.
    """
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException as exc:
        absent = {
            "INVALID_PARAMETER_VALUE": f"Registered model alias {alias} not found.",
            "RESOURCE_DOES_NOT_EXIST": f"Registered Model with name={model_name} not found",
        }.get(exc.error_code)
        if absent and exc.message.endswith(absent):
            return None
        raise


def beats(challenger: float, champion: float, metric: str, margin: float) -> bool:
    """Strictly better by more than `margin`: an equal model never displaces the champion."""
    if METRIC_DIRECTIONS[metric] == "min":
        return champion - challenger > margin
    return challenger - champion > margin


def decide_promotion(client, model_name: str, test: pd.DataFrame, config: DatasetConfig, metrics: dict[str, float], margin: float) -> Promotion:
    """Scores the current champion on this run's holdout and compares it with the challenger.

    A champion that cannot be read or loaded fails the decision (the registry is not answering
    as it should); one that loads but cannot score this holdout keeps its place.
    """
    metric = config.registry.metric
    if metric not in metrics:
        raise RegistrationError(f"evaluation produced no {metric!r}; it produced {sorted(metrics)}")
    value = metrics[metric]
    champion = alias_version(client, model_name, CHAMPION)
    if champion is None:
        return Promotion(True, "no champion yet", metric, value)
    champion_model = _champion_model(model_name, champion)
    try:
        champion_value = holdout_metrics(champion_model, test, config)[metric]
    except Exception as exc:
        log.warning("champion v%s could not be scored on this holdout: %s", champion, exc)
        return Promotion(False, f"champion v{champion} could not be scored on this holdout ({exc}); kept", metric, value, champion)
    promote = beats(value, champion_value, metric, margin)
    verdict = "beats" if promote else "does not beat"
    reason = f"{metric} {value:.5f} {verdict} champion v{champion} {champion_value:.5f} by more than {margin:g}"
    return Promotion(promote, reason, metric, value, champion, champion_value)


def _champion_model(model_name: str, version: str):
    """The champion through the one loader: its files must be the ones registered."""
    return load_registered(f"models:/{model_name}/{version}").model


def trusted_types_for(model) -> list[str]:
    """The reviewed types beyond skops' defaults that `model` holds; an unreviewed one is refused."""
    import skops.io

    try:
        data = model_bytes(model)
    except UntrustedModelError as exc:
        raise RegistrationError(str(exc)) from None
    return sorted(skops.io.get_untrusted_types(data=data))


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
    """Logs a run, registers its model as a new version, decides, and moves the aliases under the lock.

    Any failure once the run exists is rolled back in one place (_roll_back) and raised as a
    RegistrationError naming the registry; nothing is moved that was not put back.
    """
    import mlflow
    from mlflow import MlflowClient

    margin = check_margin(margin, "promotion_margin")  # a negative one would promote a worse model
    uri = tracking_uri()
    if config.registry.metric not in metrics:
        raise RegistrationError(f"evaluation produced no {config.registry.metric!r}; it produced {sorted(metrics)}")
    trusted = trusted_types_for(model)
    signature = model_signature(model, train, config)
    wait_for_tracking_server(uri)

    tags = {**lineage, "dataset": config.name, "task": config.task}
    version = changes = run_id = None
    lock = None
    try:
        mlflow.set_tracking_uri(uri)
        client = MlflowClient(uri)
        mlflow.set_experiment(model_name)
        run_name = f"{model_name}-{lineage.get('pipeline_run_id') or 'local'}"
        run_id = mlflow.start_run(run_name=run_name, tags=tags).info.run_id
        model_uri = _log_run(model, train, config, metrics, trusted, signature, artifacts, params)
        digest = stored_digest(model_uri, model, features_and_target(train, config)[0].head(50))
        version_tags = {**tags, **{k: f"{v:.6g}" for k, v in metrics.items()}, MODEL_SHA256_TAG: digest}
        version = _register_version(model_uri, model_name, version_tags)
        lock = PromotionLock(client, model_name)
        changes = AliasChanges(client, model_name, version)
        promotion = _promote(client, lock, changes, test, config, metrics, margin)
    except BaseException as exc:
        clean = run_id is None or _roll_back(client, model_name, run_id, version, changes)  # under the lock if held
        if lock is not None:
            lock.release_quietly()
        if not isinstance(exc, Exception):
            raise
        raise RegistrationError(_failure(exc, model_name, run_id, version, uri, clean)) from exc
    return Registration(
        model_name=model_name,
        version=version,
        run_id=run_id,
        model_uri=f"models:/{model_name}/{version}",
        aliases=changes.moved[:],
        promotion=asdict(promotion),
        metrics=metrics,
    )


def _log_run(model, train, config, metrics, trusted, signature, artifacts, params) -> str:
    """Parameters, metrics, config, reports and the model in skops, in the active run."""
    import mlflow
    import mlflow.sklearn

    mlflow.log_params(params)
    mlflow.log_metrics(metrics)
    mlflow.log_dict(config.model_dump(mode="json"), "config.json")
    for file_name, path in artifacts.items():
        mlflow.log_text(path.read_text(), f"reports/{file_name}")
    return mlflow.sklearn.log_model(
        model,
        name="model",
        serialization_format="skops",
        skops_trusted_types=trusted,
        signature=signature,
        input_example=features_and_target(train, config)[0].head(5),
        pip_requirements=_pinned_requirements(),
    ).model_uri


def _register_version(model_uri: str, model_name: str, tags: dict[str, str]) -> str:
    import mlflow

    return str(mlflow.register_model(model_uri, model_name, tags=tags).version)


def _promote(client, lock: PromotionLock, changes: AliasChanges, test, config, metrics, margin) -> Promotion:
    """Decides outside the lock (scoring the champion takes a while), then confirms and moves under it.

    The decision stands only if the champion is the one it was taken against; if another
    registration moved it meanwhile, the lock is let go and the new champion is scored.
    """
    for _ in range(DECISION_ATTEMPTS):
        promotion = decide_promotion(client, changes.model_name, test, config, metrics, margin)
        lock.acquire()
        if changes.read(CHAMPION) == promotion.champion_version:
            _move_aliases(client, lock, changes, promotion)
            lock.release()  # raises if the lock was lost meanwhile: the moves are then rolled back
            return promotion
        log.info("champion of %s moved to v%s while v%s was deciding; deciding again",
                 changes.model_name, changes.found[CHAMPION], changes.version)
        lock.release()
    raise RegistrationError(
        f"the champion of {changes.model_name} moved {DECISION_ATTEMPTS} times while this version decided"
    )


def _move_aliases(client, lock: PromotionLock, changes: AliasChanges, promotion: Promotion) -> None:
    """Under the lock: challenger, the decision on the version and the run, then champion last,
    so a registration that fails never leaves champion on its version."""
    import mlflow

    changes.read(CHALLENGER)
    lock.check()
    changes.move(CHALLENGER)
    client.set_model_version_tag(changes.model_name, changes.version, "promotion", promotion.reason)
    mlflow.set_tags({"registered_version": changes.version, "promoted": str(promotion.promote).lower()})
    mlflow.end_run()
    if promotion.promote:
        lock.check()
        changes.move(CHAMPION)


class AliasChanges:
    """The aliases one registration moves to its version, and where each was before.

    An alias moves only after its current version was read, so a rollback restores exactly what
    it found: it deletes only an alias this registration created, and leaves an alias that no
    longer points at this version (moved by someone else since) alone.
    """

    def __init__(self, client, model_name: str, version: str):
        self.client, self.model_name, self.version = client, model_name, version
        self.found: dict[str, str | None] = {}
        self.moved: list[str] = []

    def read(self, alias: str) -> str | None:
        self.found[alias] = alias_version(self.client, self.model_name, alias)
        return self.found[alias]

    def move(self, alias: str) -> None:
        if alias not in self.found:
            raise RegistrationError(f"alias {alias} of {self.model_name} would move before its current version was read")
        self.moved.append(alias)  # before the call: a call that fails may still have been applied
        self.client.set_registered_model_alias(self.model_name, alias, self.version)

    def undo(self) -> bool:
        """Puts every moved alias back; True when none can still point at this version."""
        clean = True
        for alias in reversed(self.moved[:]):
            earlier = self.found[alias]
            try:
                if alias_version(self.client, self.model_name, alias) == self.version:
                    if earlier is None:  # created by this registration
                        self.client.delete_registered_model_alias(self.model_name, alias)
                    else:
                        self.client.set_registered_model_alias(self.model_name, alias, earlier)
                self.moved.remove(alias)
            except Exception as exc:
                clean = False
                log.error("could not put alias %s of %s back on %s: %s", alias, self.model_name,
                          f"v{earlier}" if earlier else "nothing", mask_credentials(str(exc)))
        return clean


def _roll_back(client, model_name: str, run_id: str, version: str | None, changes: AliasChanges | None) -> bool:
    """Best effort, each step on its own: aliases back, then the version, then the run marked failed.

    The version is deleted only when no alias can still point at it: deleting a version deletes
    its aliases, and `champion` must never vanish. Without a version number, the registry may
    still have created one before the failure reached us: it is looked up by run. The original
    failure is the one worth raising, so failures here are only logged; False if any step failed.
    """
    import mlflow

    clean = changes is None or changes.undo()
    if clean:
        for withdrawn in [version] if version else _versions_of_run(client, model_name, run_id):
            try:
                client.delete_model_version(model_name, withdrawn)
            except Exception as exc:
                clean = False
                log.error("could not withdraw %s v%s: %s", model_name, withdrawn, mask_credentials(str(exc)))
    else:
        log.error("kept %s v%s: an alias may still point at it", model_name, version)
    try:
        client.set_terminated(run_id, "FAILED")
    except Exception as exc:
        clean = False
        log.error("could not mark run %s failed: %s", run_id, mask_credentials(str(exc)))
    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        try:
            mlflow.end_run("FAILED")  # leaves the run on this client (before its own request, which may fail)
        except Exception as exc:
            log.error("could not end run %s: %s", run_id, mask_credentials(str(exc)))
    return clean


def _versions_of_run(client, model_name: str, run_id: str) -> list[str]:
    try:
        return [str(v.version) for v in client.search_model_versions(f"name='{model_name}' and run_id='{run_id}'")]
    except Exception as exc:
        log.error("could not look for versions of %s from run %s: %s", model_name, run_id, mask_credentials(str(exc)))
        return []


def _failure(exc: Exception, model_name: str, run_id: str | None, version: str | None, uri: str, clean: bool) -> str:
    undone = "was rolled back" if clean else "was rolled back in part (see the log)"
    if version:
        what = f"registering {model_name} v{version} failed and {undone}"
    elif run_id:
        what = f"registering {model_name} from run {run_id} failed and {undone}"
    else:
        what = f"registering {model_name} failed before anything was written"
    return mask_credentials(f"{what}: {exc} (MLflow registry {uri})")
