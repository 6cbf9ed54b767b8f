"""The one way a fitted model becomes bytes, and bytes become a model again: skops, with the
types this project has reviewed.

skops rebuilds only the types it is told to trust, so loading runs no code of the file's choosing.
The list of trusted types lives here, in code: never in a model folder, whose `MLmodel` anyone who
can write the folder can edit. The same functions carry models between pipeline steps.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

# Types skops may load beyond its defaults. A model holding anything else is refused when it is
# written, so an unreviewed class never reaches the registry, and again when it is read.
TRUSTED_MODEL_TYPES = frozenset(
    {
        "lifecycle.modelling.features.PrepareInputs",
        # where the class lived when the first models were registered; lifecycle/features.py re-exports it
        "lifecycle.features.PrepareInputs",
        "numpy.dtype",
        # skops leaves these two out by default because their node indices are unchecked; the models
        # here are our own, and the digest check proves the file is the one that was registered.
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.tree._tree.Tree",  # random_forest's trees
    }
)


class UntrustedModelError(ValueError):
    """A model file that cannot be trusted; the message names the file and the reason."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def model_bytes(model) -> bytes:
    """The model as skops bytes; refuses a model holding a type this project has not reviewed."""
    import skops.io

    data = skops.io.dumps(model)
    unknown = set(skops.io.get_untrusted_types(data=data)) - TRUSTED_MODEL_TYPES
    if unknown:
        raise UntrustedModelError(
            f"model holds types skops does not trust and this project has not reviewed: {sorted(unknown)}"
        )
    return data


def model_from_bytes(data: bytes, where: str, expected_sha256: str | None = None):
    """The model in `data` (read from `where`), after its digest is checked when one is expected.

    The digest is taken of the very bytes that are then deserialized, so the file cannot change
    between the check and the load.
    """
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    if expected_sha256 is not None:
        actual = sha256_hex(data)
        if actual != expected_sha256.lower():
            raise UntrustedModelError(
                f"{where}: sha256 {actual} does not match the registered sha256 {expected_sha256}"
            )
    try:
        return skops.io.loads(data, trusted=sorted(TRUSTED_MODEL_TYPES))
    except UntrustedTypesFoundException:
        unknown = sorted(set(skops.io.get_untrusted_types(data=data)) - TRUSTED_MODEL_TYPES)
        raise UntrustedModelError(f"{where}: holds types this project does not trust: {unknown}") from None
    except Exception as exc:  # a truncated or malformed archive
        raise UntrustedModelError(f"{where}: not a readable skops file ({type(exc).__name__}: {exc})") from None


def save_model_file(model, path: Path) -> str:
    """Writes the model to `path` as skops; returns the file's sha256."""
    data = model_bytes(model)
    Path(path).write_bytes(data)
    return sha256_hex(data)


def load_model_file(path: Path, expected_sha256: str | None = None):
    """The model written by `save_model_file`, checked against `expected_sha256` when given."""
    return model_from_bytes(Path(path).read_bytes(), str(path), expected_sha256)


def load_artifact_model(path: str, metadata: dict):
    """A model passed between pipeline steps: skops, checked against the sha256 the writing step
    put in the artifact's metadata (KFP's metadata store, not the bucket the file sits in)."""
    expected = (metadata or {}).get("sha256")
    if not expected:
        raise UntrustedModelError(
            f"{path}: the artifact's metadata records no sha256; it was not written by save_model_file"
        )
    return load_model_file(Path(path), str(expected))
