"""Batch scoring that checks what it scored against the version's reference profile."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lifecycle.dataset.config import Monitoring
from lifecycle.monitoring.drift import DriftResult, check_drift
from lifecycle.monitoring.profile import Profile
from lifecycle.monitoring.reference import file_drift_report, registered_profile
from lifecycle.monitoring.report import drift_report_html
from lifecycle.registry.registered_model import resolve_registered
from lifecycle.scoring.batch import ScoringResult, score_file

# Drift is measured on a uniform sample of the scored rows: PSI's noise is already far below the
# thresholds at this size (docs/monitoring.md), and memory stays bounded for any input.
DRIFT_SAMPLE_ROWS = 100_000


@dataclass(frozen=True)
class CheckedScoring:
    scoring: ScoringResult
    drift: DriftResult
    profile: Profile
    report_html: str
    report_artifact: str  # where the report sits beside the version in MLflow


def score_and_check_drift(
    model_uri: str,
    input_uri: str,
    output_path: Path,
    monitoring: Monitoring,
    chunk_rows: int = 50_000,
    output_uri: str = "",
) -> CheckedScoring:
    """Scores `input_uri` with the one version `model_uri` names now, checks the scored rows and
    predictions for drift from that version's training profile, and files the report beside it.

    The profile is fetched and verified before any row is scored: a version without one fails
    here, naming it, instead of scoring without the check.
    """
    version = resolve_registered(model_uri)
    profile = registered_profile(version.name, version.version)
    scoring = score_file(
        version.uri, input_uri, output_path, chunk_rows=chunk_rows, output_uri=output_uri, sample_rows=DRIFT_SAMPLE_ROWS
    )
    inputs, predictions = scoring.sample
    drift = check_drift(profile, inputs, predictions, monitoring)
    html = drift_report_html(drift, profile)
    artifact = file_drift_report(version.name, version.version, html, drift.to_dict(), input_uri)
    return CheckedScoring(scoring, drift, profile, html, artifact)
