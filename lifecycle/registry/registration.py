"""Registering a trained model in MLflow and promoting it only when it is better.

The registered artifact is the whole sklearn pipeline (featurizer + estimator) in skops format,
with a signature inferred from the training frame, so a server needs only the raw columns. The
version is created with the stored model file's sha256 as its `model_sha256` tag, which every later
load checks (lifecycle.registry.registered_model). The training range of each numeric input column
goes into the model's MLmodel as `metadata.input_ranges` (lifecycle.contract.ranges), for the
predictor's out-of-range counters.
A new version always gets alias `challenger`; `champion` moves to it only when it beats the
current champion on the same holdout by the configured margin, and, with `registry.promotion:
manual`, only once a person approves it (lifecycle.registry.approval): until then the version is
tagged `approval=pending`. Every move of `champion` is recorded in the registry
(lifecycle.registry.history) under the lock, right after the move. The champion is scored before the
promotion lock (lifecycle.registry.lock) is taken; under the lock the champion is read again and
the aliases move only if it is unchanged, so registrations running at once cannot both move it.

The registry fails closed: only "this alias does not exist" means "no champion". Any other
registry error fails the registration, naming the registry, and whatever it changed is put back.
An unreachable tracking server is waited for, for a bounded time, before anything is written.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lifecycle.contract.ranges import INPUT_RANGES, InputRangesError, ranges_metadata, read_input_ranges
from lifecycle.contract.signature import SignatureError, signature_columns
from lifecycle.dataset.config import DatasetConfig, check_margin
from lifecycle.modelling.features import features_and_target
from lifecycle.modelling.serialization import UntrustedModelError, model_bytes
from lifecycle.registry.aliases import AliasChanges
from lifecycle.registry.errors import RegistrationError
from lifecycle.registry.history import ChampionHistory
from lifecycle.registry.lock import PromotionLock
from lifecycle.registry.policy import (
    APPROVAL_TAG,
    CHALLENGER,
    CHAMPION,
    PENDING,
    Promotion,
    apply_mode,
    decide_promotion,
)
from lifecycle.registry.registered_model import MODEL_SHA256_TAG, stored_digest
from lifecycle.registry.tracking import tracking_uri, wait_for_tracking_server
from lifecycle.urls import mask_credentials

log = logging.getLogger(__name__)

# What a server needs to load the model: the same versions that trained it.
MODEL_REQUIREMENTS = ("scikit-learn", "skops", "numpy", "pandas", "scipy")

# How many times a registration decides again when the champion moved while it scored it.
DECISION_ATTEMPTS = 5


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


def model_metadata(signature, input_ranges: dict[str, tuple[float, float]] | None) -> dict[str, Any] | None:
    """MLmodel's `metadata`: the numeric columns' training ranges, checked as the predictor will
    read them, so a registered model never carries ranges it would refuse."""
    if input_ranges is None:
        return None
    metadata = {INPUT_RANGES: ranges_metadata(input_ranges)}
    try:
        read_input_ranges(metadata, {c.name for c in signature_columns(signature) if c.numeric})
    except (InputRangesError, SignatureError) as exc:
        raise RegistrationError(f"input_ranges cannot be registered: {exc}") from None
    return metadata


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
    input_ranges: dict[str, tuple[float, float]] | None = None,
) -> Registration:
    """Logs a run, registers its model as a new version, decides, and moves the aliases under the lock.

    `input_ranges` maps numeric input columns to their training (min, max); they are written to
    the model's MLmodel as `metadata.input_ranges` (a column that is not a numeric input of the
    signature, or a bound that is not finite, is refused before anything is written).

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
    metadata = model_metadata(signature, input_ranges)
    wait_for_tracking_server(uri)

    tags = {**lineage, "dataset": config.name, "task": config.task}
    version = changes = run_id = None
    lock = recorded = None
    try:
        mlflow.set_tracking_uri(uri)
        client = MlflowClient(uri)
        mlflow.set_experiment(model_name)
        run_name = f"{model_name}-{lineage.get('pipeline_run_id') or 'local'}"
        run_id = mlflow.start_run(run_name=run_name, tags=tags).info.run_id
        model_uri = _log_run(model, train, config, metrics, trusted, signature, artifacts, params, metadata)
        digest = stored_digest(model_uri, model, features_and_target(train, config)[0].head(50))
        version_tags = {**tags, **{k: f"{v:.6g}" for k, v in metrics.items()}, MODEL_SHA256_TAG: digest}
        version = _register_version(model_uri, model_name, version_tags)
        lock = PromotionLock(client, model_name)
        changes = AliasChanges(client, model_name, version)
        recorded = ChampionHistory(client, model_name)
        by = f"pipeline run {lineage['pipeline_run_id']}" if lineage.get("pipeline_run_id") else f"run {run_id}"
        promotion = _promote(client, lock, changes, recorded, by, test, config, metrics, margin)
    except BaseException as exc:
        # under the lock if held
        clean = run_id is None or _roll_back(client, model_name, run_id, version, changes, recorded)
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


def _log_run(model, train, config, metrics, trusted, signature, artifacts, params, metadata=None) -> str:
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
        metadata=metadata,
    ).model_uri


def _register_version(model_uri: str, model_name: str, tags: dict[str, str]) -> str:
    import mlflow

    return str(mlflow.register_model(model_uri, model_name, tags=tags).version)


def _promote(
    client,
    lock: PromotionLock,
    changes: AliasChanges,
    recorded: ChampionHistory,
    by: str,
    test,
    config,
    metrics,
    margin,
) -> Promotion:
    """Decides outside the lock (scoring the champion takes a while), then confirms and moves under it.

    The decision stands only if the champion is the one it was taken against; if another
    registration moved it meanwhile, the lock is let go and the new champion is scored.
    """
    for _ in range(DECISION_ATTEMPTS):
        promotion = apply_mode(
            decide_promotion(client, changes.model_name, test, config, metrics, margin), config.registry.promotion
        )
        lock.acquire()
        if changes.read(CHAMPION) == promotion.champion_version:
            _move_aliases(client, lock, changes, recorded, by, promotion)
            lock.release()  # raises if the lock was lost meanwhile: the moves are then rolled back
            return promotion
        log.info(
            "champion of %s moved to v%s while v%s was deciding; deciding again",
            changes.model_name,
            changes.found[CHAMPION],
            changes.version,
        )
        lock.release()
    raise RegistrationError(
        f"the champion of {changes.model_name} moved {DECISION_ATTEMPTS} times while this version decided"
    )


def _move_aliases(
    client, lock: PromotionLock, changes: AliasChanges, recorded: ChampionHistory, by: str, promotion: Promotion
) -> None:
    """Under the lock: challenger, the decision on the version and the run, then champion last and
    its history entry, so a registration that fails never leaves champion on its version."""
    import mlflow

    changes.read(CHALLENGER)
    lock.check()
    changes.move(CHALLENGER)
    client.set_model_version_tag(changes.model_name, changes.version, "promotion", promotion.reason)
    if promotion.awaiting_approval:
        client.set_model_version_tag(changes.model_name, changes.version, APPROVAL_TAG, PENDING)
    mlflow.set_tags({"registered_version": changes.version, "promoted": str(promotion.promote).lower()})
    mlflow.end_run()
    if promotion.promote:
        lock.check()
        changes.move(CHAMPION)
        recorded.record(
            changes.found[CHAMPION],
            changes.version,
            "promotion",
            by,
            metric=promotion.metric,
            new=promotion.challenger_value,
            old=promotion.champion_value,
            margin=promotion.margin,
            note=promotion.reason,
        )


def _roll_back(
    client,
    model_name: str,
    run_id: str,
    version: str | None,
    changes: AliasChanges | None,
    recorded: ChampionHistory | None = None,
) -> bool:
    """Best effort, each step on its own: aliases back, their history entries, then the version,
    then the run marked failed.

    The version is deleted only when no alias can still point at it: deleting a version deletes
    its aliases, and `champion` must never vanish. Without a version number, the registry may
    still have created one before the failure reached us: it is looked up by run. The original
    failure is the one worth raising, so failures here are only logged; False if any step failed.
    """
    import mlflow

    aliases_back = changes is None or changes.undo()
    # A history entry stays only while its move may stand.
    clean = aliases_back and (recorded is None or recorded.undo())
    if aliases_back:
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
