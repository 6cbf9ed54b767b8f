"""The promotion policy: a challenger displaces the champion only when it is better on the same
holdout by more than the margin, and the registry is read failing closed. With
`registry.promotion: manual` a better version waits for a person (lifecycle.registry.approval)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import pandas as pd

from lifecycle.dataset.config import METRIC_DIRECTIONS, DatasetConfig
from lifecycle.modelling.evaluation import holdout_metrics
from lifecycle.registry.errors import RegistrationError
from lifecycle.registry.registered_model import load_registered

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
# A version tag: PENDING while a better version waits for a person to approve it, then APPROVED.
APPROVAL_TAG = "approval"
PENDING = "pending"
APPROVED = "approved"


@dataclass
class Promotion:
    promote: bool
    reason: str
    metric: str
    challenger_value: float
    champion_version: str | None = None
    champion_value: float | None = None
    margin: float | None = None
    awaiting_approval: bool = False  # better, but registry.promotion is manual: champion did not move


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


def decide_promotion(
    client, model_name: str, test: pd.DataFrame, config: DatasetConfig, metrics: dict[str, float], margin: float
) -> Promotion:
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
        return Promotion(True, "no champion yet", metric, value, margin=margin)
    champion_model = _champion_model(model_name, champion)
    try:
        champion_value = holdout_metrics(champion_model, test, config)[metric]
    except Exception as exc:
        log.warning("champion v%s could not be scored on this holdout: %s", champion, exc)
        return Promotion(
            False,
            f"champion v{champion} could not be scored on this holdout ({exc}); kept",
            metric,
            value,
            champion,
            margin=margin,
        )
    promote = beats(value, champion_value, metric, margin)
    verdict = "beats" if promote else "does not beat"
    reason = f"{metric} {value:.5f} {verdict} champion v{champion} {champion_value:.5f} by more than {margin:g}"
    return Promotion(promote, reason, metric, value, champion, champion_value, margin)


def apply_mode(promotion: Promotion, mode: str) -> Promotion:
    """With `registry.promotion: manual`, a version that would take `champion` waits for a person instead."""
    if mode == "auto" or not promotion.promote:
        return promotion
    if mode != "manual":
        raise RegistrationError(f"registry.promotion {mode!r} is neither auto nor manual")
    reason = f"{promotion.reason}; awaits approval (registry.promotion: manual)"
    return replace(promotion, promote=False, awaiting_approval=True, reason=reason)


def _champion_model(model_name: str, version: str):
    """The champion through the one loader: its files must be the ones registered."""
    return load_registered(f"models:/{model_name}/{version}").model
