"""A model registered before the logic moved into packages still loads and predicts the same.

The fixture is an MLflow model folder registered by the register step at commit 86077ad, when the
project's transformer lived at `lifecycle.features.PrepareInputs`; skops finds a stored class by
that path, so it must keep resolving (lifecycle/features.py re-exports it).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from lifecycle.registry.registered_model import load_folder

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "registered-before-packages"


def test_the_stored_model_names_the_old_class_path():
    with zipfile.ZipFile(FIXTURE / "model" / "model.skops") as archive:
        schema = archive.read("schema.json").decode()
    assert '"lifecycle.features"' in schema and '"lifecycle.modelling.features"' not in schema


def test_a_model_registered_before_the_move_loads_and_predicts_as_it_did():
    expected = json.loads((FIXTURE / "expected.json").read_text())
    trusted = load_folder(FIXTURE / "model", expected["model_sha256"])
    predictions = trusted.model.predict(pd.DataFrame(expected["rows"]))
    np.testing.assert_allclose(predictions, expected["predictions"], rtol=1e-9)
