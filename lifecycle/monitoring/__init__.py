"""Drift monitoring: a reference profile of the training split, scored rows checked against it, the report."""

from lifecycle.monitoring.drift import ColumnDrift, DriftResult, PredictionDrift, check_drift, psi
from lifecycle.monitoring.profile import Profile, ProfileError, build_profile, load_profile
from lifecycle.monitoring.report import drift_report_html

__all__ = [
    "ColumnDrift",
    "DriftResult",
    "PredictionDrift",
    "Profile",
    "ProfileError",
    "build_profile",
    "check_drift",
    "drift_report_html",
    "load_profile",
    "psi",
]
