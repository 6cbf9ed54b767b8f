"""The predictor on a model folder as KServe's storage initializer lays it out, and the checks it makes
before it reports ready: the registered digest, no code, scikit-learn version, input example warm-up."""

import shutil

import numpy as np
import pytest
import sklearn
import yaml
from mlflow import MlflowClient

from tests.serving.conftest import records, refusal, start_server, stop_server
from tools.stack import PredictorProcess, StackError

pytestmark = pytest.mark.pipeline


@pytest.fixture(scope="module")
def mnt_models(ames_model, tmp_path_factory):
    """`/mnt/models` as the storage initializer fills it: the files of the registered version's artifact
    folder, downloaded from the models URI (tests/integration does the same from S3 with kserve_storage)."""
    import mlflow.artifacts

    folder = tmp_path_factory.mktemp("mnt") / "models"
    mlflow.artifacts.download_artifacts(artifact_uri=ames_model.uri, dst_path=str(folder))
    assert MlflowClient().get_model_version_download_uri(ames_model.name, ames_model.version).endswith("/artifacts")
    return folder


def test_storage_initializer_layout_loads_and_serves_as_the_registry_uri(mnt_models, ames_server, ames_rows, tmp_path):
    assert (mnt_models / "MLmodel").is_file() and (mnt_models / "model.skops").is_file()
    server = start_server(str(mnt_models), "ames", tmp_path / "mnt.log")
    try:
        body = {"instances": records(ames_rows.head(30))}
        from_folder = server.predict_v1(body)
        assert from_folder.status_code == 200, from_folder.text
        assert from_folder.json() == ames_server.predict_v1(body).json()
    finally:
        stop_server(server)


def edited_copy(mnt_models, tmp_path, edit) -> str:
    folder = tmp_path / "models"
    shutil.copytree(mnt_models, folder)
    meta = yaml.safe_load((folder / "MLmodel").read_text())
    edit(meta, folder)
    (folder / "MLmodel").write_text(yaml.safe_dump(meta))
    return str(folder)


def test_refuses_a_model_saved_with_another_scikit_learn(mnt_models, tmp_path):
    def older(meta, _folder):
        meta["flavors"]["sklearn"]["sklearn_version"] = "1.5.1"

    said = refusal(edited_copy(mnt_models, tmp_path, older), tmp_path / "refused.log")
    assert "scikit-learn version mismatch" in said
    assert "saved with scikit-learn 1.5.1" in said and f"runs scikit-learn {sklearn.__version__}" in said


def test_refuses_to_start_without_an_input_example_to_warm_up_on(mnt_models, tmp_path):
    def no_example(meta, folder):
        meta.pop("saved_input_example_info", None)
        for example in folder.glob("input_example*"):
            example.unlink()

    said = refusal(edited_copy(mnt_models, tmp_path, no_example), tmp_path / "refused.log")
    assert "no input example to warm up on" in said


def test_refuses_a_missing_path(tmp_path):
    missing = tmp_path / "nowhere"
    assert f"model path {missing} does not exist" in refusal(str(missing), tmp_path / "refused.log")


def test_refuses_an_unknown_registered_model(ames_model, tmp_path):
    said = refusal("models:/no-such-model@champion", tmp_path / "refused.log")
    assert "cannot resolve models:/no-such-model@champion in the registry" in said


def test_two_workers_serve_the_same_answers(ames_model, ames_server, ames_rows, tmp_path):
    server = start_server(
        ames_model.uri, "ames", tmp_path / "workers.log", "--workers", "2", "--max-request-rows", "500"
    )
    try:
        body = {"instances": records(ames_rows.head(5))}
        answers = [server.predict_v1(body) for _ in range(6)]
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
        expected = ames_server.predict_v1(body).json()["predictions"]
        for answer in answers:
            np.testing.assert_array_equal(answer.json()["predictions"], expected)
        bad = server.predict_v1({"instances": []})
        assert bad.status_code == 400 and bad.json()["field"] == "instances"
    finally:
        stop_server(server)


def registered_digest(model) -> str:
    return MlflowClient().get_model_version(model.name, model.version).tags["model_sha256"]


def refused_with(folder: str, digest: str, log) -> str:
    """The predictor started on `folder` with the registered digest, as the InferenceService starts it."""
    with pytest.raises(StackError, match="predictor exited with code 1 before it was ready"):
        PredictorProcess(folder, "m", log, args=("--model-sha256", digest)).start()
    return log.read_text(errors="replace")


def test_refuses_a_model_file_changed_after_registration(ames_model, mnt_models, tmp_path):
    def flip_a_byte(_meta, folder):
        data = bytearray((folder / "model.skops").read_bytes())
        data[len(data) // 3] ^= 0x01
        (folder / "model.skops").write_bytes(bytes(data))

    digest = registered_digest(ames_model)
    said = refused_with(edited_copy(mnt_models, tmp_path, flip_a_byte), digest, tmp_path / "refused.log")
    assert f"does not match the registered sha256 {digest}" in said


def test_refuses_a_folder_with_code_and_never_imports_it(ames_model, mnt_models, tmp_path):
    marker = tmp_path / "code-ran"

    def with_code(meta, folder):
        (folder / "code" / "skops").mkdir(parents=True)
        (folder / "code" / "skops" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
        meta["flavors"]["sklearn"]["code"] = "code"

    said = refused_with(
        edited_copy(mnt_models, tmp_path, with_code), registered_digest(ames_model), tmp_path / "refused.log"
    )
    assert "flavor sklearn has a code entry ('code'); models with code are refused" in said
    assert not marker.exists()


def test_a_local_folder_needs_the_expected_digest(mnt_models, tmp_path):
    with pytest.raises(StackError, match="predictor exited with code 1 before it was ready"):
        PredictorProcess(str(mnt_models), "m", tmp_path / "refused.log").start()
    assert "no expected digest; pass --model-sha256 (or MODEL_SHA256)" in (tmp_path / "refused.log").read_text()


def test_a_registered_version_must_have_the_digest_given(ames_model, tmp_path):
    wrong = "0" * 64
    said = refused_with(ames_model.uri, wrong, tmp_path / "refused.log")
    assert f"with sha256 {registered_digest(ames_model)}, not the expected {wrong}" in said


def test_malformed_range_metadata_turns_range_counting_off_and_the_model_still_serves(
    mnt_models, ames_server, ames_rows, tmp_path
):
    """MLmodel is not covered by the model file's digest: edited ranges must neither stop the model
    nor change an answer. Counting blanks and unseen categories goes on; out-of-range is off."""

    def inverted(meta, _folder):
        assert set(meta["metadata"]["input_ranges"]["Lot_Area"]) == {"min", "max"}
        meta["metadata"]["input_ranges"]["Lot_Area"] = {"min": 10.0, "max": 1.0}

    server = start_server(edited_copy(mnt_models, tmp_path, inverted), "edited", tmp_path / "edited.log")
    try:
        rows = ames_rows.head(30)
        body = {"instances": records(rows)}
        answer = server.predict_v1(body)
        assert answer.status_code == 200, answer.text
        assert answer.json() == ames_server.predict_v1(body).json()
        said = server.output()
        warning = (
            "out-of-range counting is off for model edited: metadata.input_ranges.Lot_Area: min 10.0 is above max 1.0"
        )
        assert said.count(warning) == 1, said
        counters = server.metrics("tabular_input_")
        assert counters[("tabular_input_rows_total", (("model", "edited"),))] == 30
        for column in ("Misc_Feature", "Mas_Vnr_Type"):
            blanks = counters[("tabular_input_nulls_total", (("column", column), ("model", "edited")))]
            assert blanks == rows[column].isna().sum() > 0
        assert not [key for key in counters if key[0].startswith("tabular_input_out_of_range")]
        assert any(key[0] == "tabular_input_unseen_categories_total" for key in counters)
    finally:
        stop_server(server)
