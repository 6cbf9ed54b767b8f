"""Registering a trained model in MLflow and promoting it only when it is better.

The registered artifact is the whole sklearn pipeline (featurizer + estimator) in skops format,
with a signature inferred from the training frame, so a server needs only the raw columns.
A new version always gets alias `challenger`; `champion` moves to it only when it beats the
current champion on the same holdout by the configured margin.
"""

from __future__ import annotations

import logging
import os
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

    mlflow.set_tracking_uri(tracking_uri())
    client = MlflowClient()
    promotion = decide_promotion(client, model_name, test, config, metrics, margin)
    trusted = trusted_types_for(model)
    signature = model_signature(model, train, config)
    X_train, _ = features_and_target(train, config)

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
        version = mlflow.register_model(info.model_uri, model_name, tags={**tags, **{k: f"{v:.6g}" for k, v in metrics.items()}})
        try:
            previous_challenger = _alias_version(client, model_name, CHALLENGER)
            client.set_registered_model_alias(model_name, CHALLENGER, version.version)
            aliases = [CHALLENGER]
            if promotion.promote:
                client.set_registered_model_alias(model_name, CHAMPION, version.version)
                aliases.append(CHAMPION)
            client.set_model_version_tag(model_name, version.version, "promotion", promotion.reason)
        except Exception as exc:
            _withdraw(client, model_name, version.version, previous_challenger)
            raise RegistrationError(f"registering {model_name} v{version.version} failed and was rolled back: {exc}") from exc
        mlflow.set_tags({"registered_version": version.version, "promoted": str(promotion.promote).lower()})
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


def _withdraw(client, model_name: str, version: str, previous_challenger: str | None) -> None:
    """Best effort: the half-registered version goes, the old challenger comes back."""
    try:
        client.delete_model_version(model_name, version)
        if previous_challenger is not None:
            client.set_registered_model_alias(model_name, CHALLENGER, previous_challenger)
    except Exception as exc:  # the original failure is the one worth raising
        log.error("could not withdraw %s v%s: %s", model_name, version, exc)
