"""Only the registered model loads: folders crafted to run code are refused before any of it runs.

Each hostile folder is first shown to do what it is built to do through MLflow's own loader, in a
separate process (the payload writes a marker file); the project's loader then refuses the same
folder naming the file and the reason, and the marker is never written.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from lifecycle.modelling.serialization import (
    UntrustedModelError,
    load_artifact_model,
    model_bytes,
    save_model_file,
    sha256_hex,
)
from lifecycle.registry.registered_model import (
    MODEL_SHA256_TAG,
    load_folder,
    load_registered,
    resolve_registered,
    stored_digest,
)

NAME = "folder-checks"


def small_model():
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"area": rng.uniform(500, 3000, 80), "zone": rng.choice(["RL", "RM", "FV"], 80)})
    y = X["area"] * 100 + X["zone"].map({"RL": 5_000, "RM": 0, "FV": 9_000})
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["zone"]), remainder="passthrough"), Ridge()
    )
    return model.fit(X, y), X


@pytest.fixture
def registered(mlflow_store, tmp_path):
    """A version registered as the register step does: skops, input example, digest tag."""
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient

    model, X = small_model()
    mlflow.set_experiment(NAME)  # not one an earlier test left active in another store
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", serialization_format="skops", input_example=X.head(3))
    digest = stored_digest(info.model_uri, model, X.head(5))
    version = mlflow.register_model(info.model_uri, NAME, tags={MODEL_SHA256_TAG: digest}).version
    MlflowClient().set_registered_model_alias(NAME, "champion", version)
    folder = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/{version}", dst_path=str(tmp_path / "copy")))
    return {"model": model, "X": X, "digest": digest, "version": str(version), "folder": folder}


def mlflow_loads(folder: Path, cwd: Path) -> subprocess.CompletedProcess:
    """MLflow's own loader on `folder`, in a fresh process."""
    code = f"import mlflow.sklearn; mlflow.sklearn.load_model({str(folder)!r})"
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


def edit_mlmodel(folder: Path, edit) -> None:
    meta = yaml.safe_load((folder / "MLmodel").read_text())
    edit(meta["flavors"])
    (folder / "MLmodel").write_text(yaml.safe_dump(meta))


class Payload:
    """Unpickling this calls open(marker, "w"): any code at all could run there."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_the_registered_folder_loads_and_predicts_as_trained(registered):
    trusted = load_registered(f"models:/{NAME}@champion")
    assert trusted.version.version == registered["version"] and trusted.sha256 == registered["digest"]
    np.testing.assert_array_equal(trusted.model.predict(registered["X"]), registered["model"].predict(registered["X"]))


def test_a_pickle_payload_is_refused_before_it_runs(registered, tmp_path):
    folder, marker = registered["folder"], tmp_path / "pickle-ran"
    (folder / "model.pkl").write_bytes(pickle.dumps(Payload(marker)))

    def to_pickle(flavors):
        flavors["sklearn"].update(pickled_model="model.pkl", serialization_format="pickle")
        flavors["python_function"]["model_path"] = "model.pkl"

    edit_mlmodel(folder, to_pickle)
    mlflow_loads(folder, tmp_path)
    assert marker.exists(), "MLflow's own loader runs the payload"
    marker.unlink()
    for digest in (registered["digest"], sha256_hex((folder / "model.pkl").read_bytes())):
        with pytest.raises(
            UntrustedModelError, match=rf"{folder / 'MLmodel'}: serialization_format 'pickle'; only skops is loaded"
        ):
            load_folder(folder, digest)
    assert not marker.exists()


def test_a_code_folder_is_refused_before_it_is_imported(registered, tmp_path):
    folder, marker = registered["folder"], tmp_path / "code-ran"
    package = folder / "code" / "sitecustomize_payload"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    # MLflow puts code/ first on sys.path; a .pth-free way to show it is imported is a module the
    # model needs. The payload shadows `skops` itself, which MLflow imports right after.
    shutil.copytree(package, folder / "code" / "skops")

    def with_code(flavors):
        flavors["sklearn"]["code"] = "code"

    edit_mlmodel(folder, with_code)
    mlflow_loads(folder, tmp_path)
    assert marker.exists(), "MLflow's own loader imports the folder's code"
    marker.unlink()
    with pytest.raises(
        UntrustedModelError,
        match=rf"{folder / 'MLmodel'}: flavor sklearn has a code entry \('code'\); models with code are refused",
    ):
        load_folder(folder, registered["digest"])
    assert not marker.exists()


class Sneaky:
    """A class no one reviewed: skops would have to import and rebuild it."""

    def __setstate__(self, state):
        Path(state["marker"]).write_text("ran")


def test_a_type_outside_the_trusted_list_is_refused(registered, tmp_path):
    import skops.io

    folder, marker = registered["folder"], tmp_path / "type-ran"
    sneaky = Sneaky()
    sneaky.marker = str(marker)
    data = skops.io.dumps([registered["model"], sneaky])
    (folder / "model.skops").write_bytes(data)
    with pytest.raises(
        UntrustedModelError,
        match=r"model.skops: holds types this project does not trust: "
        r"\['tests.registry.test_registered_model.Sneaky'\]",
    ):
        load_folder(folder, sha256_hex(data))  # even with the digest right, the type is refused
    assert not marker.exists()
    with pytest.raises(UntrustedModelError, match="not reviewed"):
        model_bytes(sneaky)  # and such a model is never written in the first place


def test_one_flipped_byte_is_refused_naming_both_digests(registered):
    folder = registered["folder"]
    data = bytearray((folder / "model.skops").read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / "model.skops").write_bytes(bytes(data))
    with pytest.raises(
        UntrustedModelError,
        match=(
            rf"model.skops: sha256 {sha256_hex(bytes(data))} does not match the registered sha256 "
            rf"{registered['digest']}"
        ),
    ):
        load_folder(folder, registered["digest"])


@pytest.mark.parametrize(
    "edit, reason",
    [
        (
            lambda f: f["sklearn"].update(pickled_model="../model.skops"),
            "pickled_model '../model.skops' is not a file in",
        ),
        (lambda f: f["sklearn"].update(pickled_model=""), "pickled_model '' is not a file in"),
        (lambda f: f.pop("sklearn"), "no sklearn flavor"),
        (lambda f: f["python_function"].update(code="code"), "flavor python_function has a code entry"),
        (lambda f: f["sklearn"].update(serialization_format="cloudpickle"), "serialization_format 'cloudpickle'"),
    ],
)
def test_mlmodel_edits_are_refused_by_name(registered, edit, reason):
    edit_mlmodel(registered["folder"], edit)
    with pytest.raises(UntrustedModelError, match=re.escape(reason)):
        load_folder(registered["folder"], registered["digest"])


def test_a_model_file_behind_a_link_is_refused(registered, tmp_path):
    folder = registered["folder"]
    outside = tmp_path / "elsewhere.skops"
    shutil.move(folder / "model.skops", outside)
    os.symlink(outside, folder / "model.skops")
    with pytest.raises(UntrustedModelError, match="pickled_model 'model.skops' is not a file in"):
        load_folder(folder, registered["digest"])


def test_a_version_without_a_digest_tag_is_refused(registered):
    from mlflow import MlflowClient

    MlflowClient().delete_model_version_tag(NAME, registered["version"], MODEL_SHA256_TAG)
    with pytest.raises(UntrustedModelError, match=rf"{NAME} v{registered['version']} has no model_sha256 tag"):
        resolve_registered(f"models:/{NAME}@champion")


@pytest.mark.parametrize("uri", ["runs:/abc/model", "models:/m-0123abc", "models:/name", "s3://bucket/model"])
def test_only_registered_versions_resolve(uri, mlflow_store):
    with pytest.raises(UntrustedModelError, match="is not a registered model URI"):
        resolve_registered(uri)


def test_models_between_steps_are_skops_checked_against_their_metadata(tmp_path):
    model, X = small_model()
    path = tmp_path / "model"
    metadata = {"sha256": save_model_file(model, path)}
    np.testing.assert_array_equal(load_artifact_model(str(path), metadata).predict(X), model.predict(X))
    with pytest.raises(UntrustedModelError, match="metadata records no sha256"):
        load_artifact_model(str(path), {})
    path.write_bytes(pickle.dumps(model))  # a step's output swapped in the bucket
    with pytest.raises(UntrustedModelError, match="does not match the registered sha256"):
        load_artifact_model(str(path), metadata)


def test_the_loader_takes_nothing_from_the_folder_it_should_not(registered):
    """skops_trusted_types in MLmodel is ignored: the trusted list is the project's."""
    edit_mlmodel(
        registered["folder"], lambda f: f["sklearn"].update(skops_trusted_types=["builtins.exec", "posix.system"])
    )
    trusted = load_folder(registered["folder"], registered["digest"])
    assert trusted.sha256 == registered["digest"]


def test_loading_a_version_is_a_read(registered, tmp_path):
    """A load changes nothing in the registry."""
    from mlflow import MlflowClient

    client = MlflowClient()
    before = [(v.version, dict(v.tags), list(v.aliases)) for v in client.search_model_versions(f"name='{NAME}'")]
    load_registered(f"models:/{NAME}/{registered['version']}")
    with pytest.raises(UntrustedModelError):
        shutil.rmtree(registered["folder"])
        load_folder(registered["folder"], registered["digest"])
    assert [
        (v.version, dict(v.tags), list(v.aliases)) for v in client.search_model_versions(f"name='{NAME}'")
    ] == before
