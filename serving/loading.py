"""Finding, verifying and loading the model to serve.

In the cluster KServe's storage initializer copies the registered version's artifact folder
(`.../models/m-<id>/artifacts`) to `/mnt/models`, so `MLmodel` sits at the top of that folder, and
the deploy step sets the version's digest as MODEL_SHA256. Locally the folder comes from a
`models:/NAME@ALIAS` or `models:/NAME/VERSION` URI, whose digest the registry holds. Either way the
checks are `lifecycle.registry.registered_model`'s: skops only, no code, the digest matched before loading.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifecycle.modelling.serialization import UntrustedModelError
from lifecycle.registry.registered_model import (
    TrustedModel,
    check_sha256,
    load_folder,
    load_registered,
)
from serving.errors import ModelLoadError

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    model: Any  # the fitted sklearn estimator (a Pipeline)
    path: Path  # local model directory (holds MLmodel)
    signature: Any  # mlflow ModelSignature
    input_example: Any  # pandas DataFrame or None
    sklearn_version: str
    sha256: str  # of the model file, as registered
    classes: list | None  # class labels when the model has predict_proba
    metadata: Any = None  # MLmodel's `metadata`, as the file has it: not covered by the digest


def _trusted(model_uri: str, expected_sha256: str | None) -> TrustedModel:
    if model_uri.startswith("models:/"):
        trusted = load_registered(model_uri)
        if expected_sha256 is not None and check_sha256(expected_sha256, "--model-sha256") != trusted.sha256:
            raise UntrustedModelError(
                f"{model_uri} is v{trusted.version.version} with sha256 {trusted.sha256}, "
                f"not the expected {expected_sha256}"
            )
        return trusted
    if ":/" in model_uri and not model_uri.startswith("file://"):
        raise UntrustedModelError(
            f"{model_uri}: serve a models:/ URI or a local folder; other URIs cannot be verified here"
        )
    local = Path(model_uri.removeprefix("file://"))
    if not local.exists():
        raise UntrustedModelError(f"model path {local} does not exist")
    if expected_sha256 is None:
        raise UntrustedModelError(
            f"{local}: no expected digest; pass --model-sha256 (or MODEL_SHA256) with the version's model_sha256 tag"
        )
    return load_folder(local, expected_sha256)


def load_model(model_uri: str, expected_sha256: str | None = None) -> LoadedModel:
    """The verified model with its signature, input example and class labels; ModelLoadError names
    the file and the reason when it cannot be trusted or read."""
    try:
        trusted = _trusted(model_uri, expected_sha256)
    except UntrustedModelError as exc:
        raise ModelLoadError(str(exc)) from None
    try:
        example = trusted.meta.load_input_example(str(trusted.path))
    except FileNotFoundError:
        example = None
    model = trusted.model
    classes = None
    if hasattr(model, "predict_proba") and hasattr(model, "classes_"):
        classes = [c.item() if hasattr(c, "item") else c for c in model.classes_]
    log.info("loaded %s (scikit-learn %s, sha256 %s)", trusted.path, trusted.sklearn_version, trusted.sha256)
    return LoadedModel(
        model=model,
        path=trusted.path,
        signature=trusted.meta.signature,
        input_example=example,
        sklearn_version=trusted.sklearn_version,
        sha256=trusted.sha256,
        classes=classes,
        metadata=trusted.meta.metadata,
    )
