"""The reference profile kept with a registered version, and drift reports filed beside it.

The profile travels as an artifact of the version's run (`reports/profile.json`), which anyone who
can write the artifact store could change; its sha256 is a tag of the model version, in the
registry's database. A profile is read back only when its bytes match that tag.
"""

from __future__ import annotations

import hashlib
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from lifecycle.monitoring.profile import MAX_PROFILE_CHARS, Profile, ProfileError, load_profile
from lifecycle.urls import mask_credentials

PROFILE_FILE = "profile.json"
PROFILE_ARTIFACT = f"reports/{PROFILE_FILE}"  # where registration logs it (lifecycle.registry.registration)
PROFILE_SHA256_TAG = "profile_sha256"
DRIFT_FOLDER = "drift"


def profile_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def reference_profile_text(model, train, test, config) -> str:
    """The profile registration stores: the training split's inputs, and the model's predictions
    for the holdout split (fairer than its training rows, which it fits closely), as JSON text."""
    import json

    from lifecycle.modelling.features import features_and_target
    from lifecycle.monitoring.profile import build_profile
    from lifecycle.scoring.batch import predict_frame

    holdout = features_and_target(test, config)[0]
    profile = build_profile(features_and_target(train, config)[0], predict_frame(model, holdout), config)
    return json.dumps(profile, indent=1, sort_keys=True)


def profile_ranges(profile_text: str) -> dict[str, tuple[float, float]]:
    """The training range (min, max) of each numeric column of a reference profile (JSON text),
    for the columns that had a finite value: what registration writes into the model's MLmodel."""
    import json
    import math

    ranges = {}
    for column, stats in json.loads(profile_text).get("numeric", {}).items():
        low, high = stats.get("min"), stats.get("max")
        if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
            ranges[column] = (float(low), float(high))
    return ranges


def registered_profile(name: str, version: str, client=None) -> Profile:
    """The verified reference profile of `name` version `version`; ProfileError naming the version
    and the reason when there is none, it cannot be fetched, or it is not the one registered."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = client or MlflowClient()
    where = f"{name} v{version}"
    try:
        found = client.get_model_version(name, version)
    except MlflowException as exc:
        raise ProfileError(f"cannot read {where} in the registry: {mask_credentials(exc.message)}") from exc
    expected = (found.tags or {}).get(PROFILE_SHA256_TAG)
    if not expected:
        raise ProfileError(
            f"{where} has no {PROFILE_SHA256_TAG} tag: it was registered without a reference profile, so drift "
            "cannot be checked against it; train and register it again"
        )
    with tempfile.TemporaryDirectory(prefix="profile-") as scratch:
        try:
            path = Path(client.download_artifacts(found.run_id, PROFILE_ARTIFACT, scratch))
        except (MlflowException, OSError) as exc:
            message = getattr(exc, "message", str(exc))
            raise ProfileError(f"cannot fetch {PROFILE_ARTIFACT} of {where}: {mask_credentials(message)}") from exc
        if path.stat().st_size > MAX_PROFILE_CHARS:
            raise ProfileError(
                f"{PROFILE_ARTIFACT} of {where} is {path.stat().st_size:,} bytes; a profile is kilobytes"
            )
        data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ProfileError(
            f"{PROFILE_ARTIFACT} of {where} has sha256 {actual}, not the registered {expected}: it changed after "
            "registration"
        )
    try:
        return load_profile(data.decode())
    except ProfileError as exc:
        raise ProfileError(f"{PROFILE_ARTIFACT} of {where}: {exc}") from None


def file_drift_report(name: str, version: str, html: str, summary: dict, source: str, client=None) -> str:
    """Logs a drift report and its figures beside the version (its run's `drift/` folder); returns
    the artifact path of the report."""
    import json

    from mlflow import MlflowClient

    client = client or MlflowClient()
    run_id = client.get_model_version(name, version).run_id
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    report = f"{DRIFT_FOLDER}/{stamp}.html"
    client.log_text(run_id, html, report)
    client.log_text(
        run_id, json.dumps({"source": source, **summary}, indent=2, default=str), f"{DRIFT_FOLDER}/{stamp}.json"
    )
    return report
