"""Loading a registered model only as this project wrote it, and only the bytes that were registered.

MLflow's own loader takes the serialization format, skops' trusted types and a `code` folder from
the model folder's `MLmodel`: whoever can write the folder can make a load run their code. Here the
folder must hold what registration writes (an sklearn flavor in skops, no `code`), the trusted
types come from `lifecycle.modelling.serialization`, and the model file's sha256 must equal the version's
`model_sha256` tag before it is deserialized. The tag lives in the registry's database, which the
artifact store's writers cannot change. Every load of a registered model goes through
`load_registered`: the predictor, the register step (the champion), batch scoring and deploy.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifecycle.modelling.serialization import (
    UntrustedModelError,
    model_from_bytes,
    sha256_hex,
)
from lifecycle.urls import mask_credentials

MODEL_SHA256_TAG = "model_sha256"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_REGISTERED_URI = re.compile(r"^models:/(?P<name>[^@]+?)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    sha256: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass
class TrustedModel:
    model: Any  # the fitted sklearn Pipeline
    path: Path  # the local folder holding MLmodel
    meta: Any  # mlflow.models.Model: signature, input example
    sha256: str
    sklearn_version: str
    version: RegisteredVersion | None = None  # None for a folder loaded with a digest given by hand


def check_sha256(value: str, where: str) -> str:
    digest = (value or "").strip().lower()
    if not _SHA256.fullmatch(digest):
        raise UntrustedModelError(f"{where}: {value!r} is not a sha256 digest (64 hex digits)")
    return digest


def parse_registered_uri(uri: str) -> tuple[str, str | None, str | None]:
    """(name, alias, version) of `models:/NAME@ALIAS` or `models:/NAME/VERSION`."""
    match = _REGISTERED_URI.fullmatch(uri)
    if match is None:
        raise UntrustedModelError(f"{uri!r} is not a registered model URI (models:/NAME@ALIAS or models:/NAME/VERSION)")
    return match["name"], match["alias"], match["version"]


def resolve_registered(uri: str, client=None) -> RegisteredVersion:
    """The one version `uri` names now, with the digest recorded when it was registered.

    An alias is resolved once, here: whatever happens to the alias afterwards, the caller loads,
    scores and records this version.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    name, alias, version = parse_registered_uri(uri)
    client = client or MlflowClient()
    try:
        found = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
    except MlflowException as exc:
        raise UntrustedModelError(f"cannot resolve {uri} in the registry: {mask_credentials(exc.message)}") from exc
    tag = (found.tags or {}).get(MODEL_SHA256_TAG)
    if not tag:
        raise UntrustedModelError(
            f"{name} v{found.version} has no {MODEL_SHA256_TAG} tag, so its files cannot be verified; register it again"
        )
    return RegisteredVersion(
        name, str(found.version), check_sha256(tag, f"{name} v{found.version} tag {MODEL_SHA256_TAG}")
    )


def find_model_dir(root: Path) -> Path:
    """The folder holding `MLmodel`: `root` itself or its one subfolder that has it."""
    if (root / "MLmodel").is_file():
        return root
    found = sorted(p.parent for p in root.glob("*/MLmodel"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise UntrustedModelError(f"no MLmodel file in {root} or its subfolders: is this an MLflow model directory?")
    raise UntrustedModelError(f"{root} holds several MLflow models ({', '.join(map(str, found))}); point at one")


def model_file_of(folder: Path) -> Path:
    """The skops file named by `folder`'s MLmodel, once the MLmodel is what registration writes.

    Refused: a `code` entry in any flavor (MLflow would import it), any format but skops, a model
    file outside the folder or behind a link.
    """
    import yaml

    mlmodel = folder / "MLmodel"
    try:
        meta = yaml.safe_load(mlmodel.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UntrustedModelError(f"{mlmodel}: not readable YAML ({exc})") from None
    flavors = meta.get("flavors") if isinstance(meta, dict) else None
    if not isinstance(flavors, dict) or not isinstance(flavors.get("sklearn"), dict):
        raise UntrustedModelError(f"{mlmodel}: no sklearn flavor")
    if meta.get("code"):
        raise UntrustedModelError(f"{mlmodel}: has a code entry ({meta['code']!r}); models with code are refused")
    for flavor_name, flavor in flavors.items():
        if isinstance(flavor, dict) and flavor.get("code"):
            raise UntrustedModelError(
                f"{mlmodel}: flavor {flavor_name} has a code entry ({flavor['code']!r}); models with code are refused"
            )
    sklearn_flavor = flavors["sklearn"]
    fmt = sklearn_flavor.get("serialization_format")
    if fmt != "skops":
        raise UntrustedModelError(f"{mlmodel}: serialization_format {fmt!r}; only skops is loaded")
    name = str(sklearn_flavor.get("pickled_model") or "")
    path = folder / name
    if not name or Path(name).name != name or path.is_symlink() or not path.is_file():
        raise UntrustedModelError(f"{mlmodel}: pickled_model {name!r} is not a file in {folder}")
    return path


def check_sklearn_version(recorded: str | None, running: str, where: str) -> None:
    """A skops model is only trustworthy in the scikit-learn that wrote it."""
    if not recorded:
        raise UntrustedModelError(f"{where}: records no scikit-learn version (flavors.sklearn.sklearn_version)")
    if recorded != running:
        raise UntrustedModelError(
            f"{where}: scikit-learn version mismatch: the model was saved with scikit-learn {recorded}, "
            f"this process runs scikit-learn {running}; load it where scikit-learn=={recorded} is installed"
        )


def load_folder(folder: Path, expected_sha256: str, version: RegisteredVersion | None = None) -> TrustedModel:
    """The model in a local folder, loaded only if its file's sha256 is `expected_sha256`."""
    import sklearn
    from mlflow.models import Model

    expected = check_sha256(expected_sha256, "expected model sha256")
    folder = find_model_dir(Path(folder))
    model_file = model_file_of(folder)
    meta = Model.load(str(folder))
    recorded = meta.flavors["sklearn"].get("sklearn_version")
    check_sklearn_version(recorded, sklearn.__version__, str(folder / "MLmodel"))
    model = model_from_bytes(model_file.read_bytes(), str(model_file), expected)
    return TrustedModel(model, folder, meta, expected, recorded, version)


def download_version(version: RegisteredVersion, scratch: Path | None = None) -> Path:
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    dest = scratch or Path(tempfile.mkdtemp(prefix="registered-model-"))
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=version.uri, dst_path=str(dest)))
    except MlflowException as exc:
        raise UntrustedModelError(f"cannot fetch {version.uri}: {mask_credentials(exc.message)}") from exc


def stored_digest(logged_model_uri: str, model, sample) -> str:
    """The sha256 to register for the model just logged at `logged_model_uri` (models:/m-<id>).

    skops archives are not byte-for-byte reproducible, so the digest is taken of the file as
    stored, after proving it is this model: its folder passes every load check and the file,
    loaded, predicts `sample` exactly as the in-memory `model` does.
    """
    import mlflow.artifacts
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="logged-model-") as scratch:
        try:
            folder = find_model_dir(
                Path(mlflow.artifacts.download_artifacts(artifact_uri=logged_model_uri, dst_path=scratch))
            )
        except Exception as exc:
            raise UntrustedModelError(
                f"cannot read back {logged_model_uri} after logging it: {mask_credentials(str(exc))}"
            ) from exc
        model_file = model_file_of(folder)
        data = model_file.read_bytes()
        stored = model_from_bytes(data, str(model_file))
    if not np.array_equal(np.asarray(stored.predict(sample)), np.asarray(model.predict(sample))):
        raise UntrustedModelError(
            f"{logged_model_uri}: the stored model does not predict as the trained one; not registered"
        )
    return sha256_hex(data)


def load_registered(uri: str, client=None, scratch: Path | None = None) -> TrustedModel:
    """`models:/NAME@ALIAS` or `models:/NAME/VERSION`, resolved once, fetched, verified and loaded."""
    version = resolve_registered(uri, client)
    return load_folder(download_version(version, scratch), version.sha256, version)
