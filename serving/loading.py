"""Finding, checking and loading the registered sklearn model.

In the cluster KServe's storage initializer copies the registered version's artifact folder
(`.../models/m-<id>/artifacts`) to `/mnt/models`, so `MLmodel` sits at the top of that folder.
Locally the same folder comes from a `models:/NAME@ALIAS` or `models:/NAME/VERSION` URI.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.errors import ModelLoadError

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    model: Any  # the fitted sklearn estimator (a Pipeline)
    path: Path  # local model directory (holds MLmodel)
    signature: Any  # mlflow ModelSignature
    input_example: Any  # pandas DataFrame or None
    sklearn_version: str
    serialization_format: str
    classes: list | None  # class labels when the model has predict_proba


def find_model_dir(root: Path) -> Path:
    """The folder holding `MLmodel`: `root` itself or its one subfolder that has it."""
    if (root / "MLmodel").is_file():
        return root
    found = sorted(p.parent for p in root.glob("*/MLmodel"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise ModelLoadError(f"no MLmodel file in {root} or its subfolders: is this an MLflow model directory?")
    raise ModelLoadError(f"{root} holds several MLflow models ({', '.join(map(str, found))}); point at one")


def fetch_model_dir(model_uri: str, scratch: Path | None = None) -> Path:
    """A local directory for `model_uri`: a path as it is, anything else downloaded through MLflow."""
    is_local = model_uri.startswith("file://") or ":/" not in model_uri  # models:/, s3://, runs:/ are not
    if is_local:
        local = Path(model_uri.removeprefix("file://"))
        if not local.exists():
            raise ModelLoadError(f"model path {local} does not exist")
        return find_model_dir(local)
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    dest = scratch or Path(tempfile.mkdtemp(prefix="serving-model-"))
    try:
        downloaded = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dest))
    except MlflowException as exc:
        raise ModelLoadError(f"cannot fetch {model_uri}: {exc.message}") from exc
    return find_model_dir(Path(downloaded))


def check_sklearn_version(recorded: str | None, running: str) -> None:
    """A pickled or skops model is only trustworthy in the scikit-learn that wrote it."""
    if not recorded:
        raise ModelLoadError("the model's MLmodel records no scikit-learn version (flavors.sklearn.sklearn_version)")
    if recorded != running:
        raise ModelLoadError(
            f"scikit-learn version mismatch: the model was saved with scikit-learn {recorded}, "
            f"this server runs scikit-learn {running}; serve it with an image built with scikit-learn=={recorded}"
        )


def load_model(model_uri: str) -> LoadedModel:
    """Fetches, checks the sklearn version, and loads the model with its signature and example."""
    import mlflow.sklearn
    import sklearn
    from mlflow.models import Model

    path = fetch_model_dir(model_uri)
    meta = Model.load(str(path))
    flavor = meta.flavors.get("sklearn")
    if flavor is None:
        raise ModelLoadError(f"{model_uri} has no sklearn flavor (flavors: {', '.join(meta.flavors)})")
    check_sklearn_version(flavor.get("sklearn_version"), sklearn.__version__)
    model_file = flavor.get("pickled_model", "the model file")
    if not (path / model_file).is_file():
        raise ModelLoadError(f"cannot load the sklearn model in {path}: {model_file} is missing")
    try:
        model = mlflow.sklearn.load_model(str(path))
    except Exception as exc:  # a truncated file, skops refusing a type, a missing project class, ...
        raise ModelLoadError(f"cannot load the sklearn model in {path}: {model_file} is unreadable ({type(exc).__name__}: {exc})") from exc
    try:
        example = meta.load_input_example(str(path))
    except FileNotFoundError:
        example = None
    classes = None
    if hasattr(model, "predict_proba") and hasattr(model, "classes_"):
        classes = [c.item() if hasattr(c, "item") else c for c in model.classes_]
    log.info("loaded %s (scikit-learn %s, %s)", path, flavor.get("sklearn_version"), flavor.get("serialization_format"))
    return LoadedModel(
        model=model,
        path=path,
        signature=meta.signature,
        input_example=example,
        sklearn_version=flavor.get("sklearn_version"),
        serialization_format=flavor.get("serialization_format", "unknown"),
        classes=classes,
    )
