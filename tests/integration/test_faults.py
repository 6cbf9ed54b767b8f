"""Parts of the stack failing under a running pipeline: nothing lost, a clear message, and the
registry consistent afterwards (no half-registered version, no alias at a missing version)."""

from __future__ import annotations

import multiprocessing
import secrets
import shutil
import threading
import time

import pytest
from mlflow import MlflowClient

from tests.integration.conftest import MODEL, assert_aliases_resolve, registry_state
from tests.integration.registering import train_and_register
from tests.serving.conftest import refusal
from tools.run_local import run_training

# Also `pipeline`: they run whole pipelines, which `make test-fast` leaves out.
pytestmark = [pytest.mark.integration, pytest.mark.pipeline]


def output(capfd) -> str:
    captured = capfd.readouterr()
    return captured.out + captured.err


def test_tracking_server_unreachable_at_register(stack, trained, quick_ames, capfd, monkeypatch):
    before = registry_state(MODEL)
    champion = assert_aliases_resolve(MODEL)["champion"]
    monkeypatch.setenv("TRACKING_SERVER_WAIT_SECONDS", "6")
    with stack.tracking_down() as uri, pytest.raises(RuntimeError, match="register-model"):
        run_training(quick_ames, stack.workdir, data_uri=trained.data_uri, model_name=MODEL)
    text = output(capfd)
    assert f"MLflow tracking server {uri} unreachable (" in text  # the retries, with their delays
    assert f"MLflow tracking server {uri} unreachable after " in text and "nothing was registered" in text
    assert registry_state(MODEL) == before
    assert assert_aliases_resolve(MODEL)["champion"] == champion


def test_s3_unreachable_at_ingest(stack, trained, quick_ames, capfd):
    before = registry_state(MODEL)
    with stack.s3_down() as endpoint, pytest.raises(RuntimeError, match="ingest-dataset"):
        run_training(quick_ames, stack.workdir, data_uri=trained.data_uri, model_name=MODEL)
    assert f"cannot read {trained.data_uri}: S3 endpoint {endpoint} unreachable" in output(capfd)
    assert registry_state(MODEL) == before


@pytest.mark.parametrize(
    "key, reason",
    [
        ("datasets/ames/missing.csv", "does not exist"),
        ("no-such-bucket/ames.csv", "bucket 'no-such-bucket' does not exist"),
    ],
)
def test_missing_bucket_or_key_at_ingest(stack, trained, quick_ames, capfd, key, reason):
    before = registry_state(MODEL)
    uri = f"s3://{key}"
    with pytest.raises(RuntimeError, match="ingest-dataset"):
        run_training(quick_ames, stack.workdir, data_uri=uri, model_name=MODEL)
    assert f"cannot read {uri}: {reason}" in output(capfd)
    assert registry_state(MODEL) == before


@pytest.mark.parametrize("variable", ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
def test_wrong_credentials_are_denied_without_showing_them(stack, trained, quick_ames, capfd, monkeypatch, variable):
    before = registry_state(MODEL)
    wrong = "AKIA" + secrets.token_hex(8).upper() if variable == "AWS_ACCESS_KEY_ID" else secrets.token_urlsafe(30)
    monkeypatch.setenv(variable, wrong)
    with pytest.raises(RuntimeError, match="ingest-dataset"):
        run_training(quick_ames, stack.workdir, data_uri=trained.data_uri, model_name=MODEL)
    text = output(capfd)
    assert (
        f"cannot read {trained.data_uri}: access denied by {stack.s3_endpoint} for bucket '{stack.data_bucket}'" in text
    )
    for value in (wrong, *stack.credentials):
        assert value not in text
    assert registry_state(MODEL) == before


class AliasWatch(threading.Thread):
    """Polls a model's aliases while something runs; keeps every alias seen at a missing version."""

    def __init__(self, model_name: str):
        super().__init__(daemon=True)
        self.model_name = model_name
        self.stopping = threading.Event()
        self.dangling: list[dict] = []
        self.checks = 0

    def run(self):
        from mlflow.exceptions import MlflowException

        client = MlflowClient()
        while not self.stopping.is_set():
            try:
                aliases = dict(client.get_registered_model(self.model_name).aliases)
                for alias, version in aliases.items():
                    try:
                        client.get_model_version(self.model_name, version)
                    except MlflowException:
                        self.dangling.append({alias: version})
                self.checks += 1
            except MlflowException:  # not created yet
                pass
            time.sleep(0.1)


def test_two_registrations_at_once_leave_champion_on_the_better(stack):
    name = "ames-concurrent"
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(2), context.Queue()
    # alpha 10 fits Ames well; alpha 1e5 all but ignores the features.
    workers = [context.Process(target=train_and_register, args=(name, alpha, start, results)) for alpha in (1e5, 10.0)]
    watch = AliasWatch(name)
    watch.start()
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    watch.stopping.set()
    watch.join()

    assert [o[0] for o in outcomes] == ["registered", "registered"], outcomes
    by_alpha = {alpha: registration for _, alpha, registration in outcomes}
    client = MlflowClient()
    versions = client.search_model_versions(f"name='{name}'")
    assert sorted(str(v.version) for v in versions) == ["1", "2"] and {v.status for v in versions} == {"READY"}
    aliases = assert_aliases_resolve(name)
    assert aliases["champion"] == by_alpha[10.0]["version"]
    assert by_alpha[10.0]["metrics"]["test_rmsle"] < by_alpha[1e5]["metrics"]["test_rmsle"]
    # Decided one after the other: the second compared itself with the first.
    reasons = sorted(r["promotion"]["reason"] for r in by_alpha.values())
    assert reasons.count("no champion yet") == 1 and any("champion v" in r for r in reasons), reasons
    assert watch.checks > 0 and watch.dangling == []
    assert client.search_registered_models(filter_string="name LIKE '%promotion-lock%'") == []


def test_tracking_server_restarted_mid_run(stack, ames_s3_uri, quick_ames):
    name = "ames-restart"
    client = MlflowClient()
    restarted = threading.Event()

    def restart_once_register_has_a_run():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            experiment = client.get_experiment_by_name(name)
            if experiment is not None and client.search_runs([experiment.experiment_id]):
                stack.restart_tracking()
                restarted.set()
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=restart_once_register_has_a_run, daemon=True)
    watcher.start()
    try:
        registration = run_training(quick_ames, stack.workdir, data_uri=ames_s3_uri, model_name=name)
    except RuntimeError:
        registration = None  # failing cleanly is allowed; what it left behind is checked below
    watcher.join(timeout=120)
    assert restarted.is_set()

    experiment = client.get_experiment_by_name(name)
    (run,) = client.search_runs([experiment.experiment_id])
    versions = client.search_model_versions(f"name='{name}'")
    if registration is not None:
        assert run.info.status == "FINISHED"
        assert [str(v.version) for v in versions] == [registration["version"]]
        assert versions[0].status == "READY"
        assert assert_aliases_resolve(name) == {
            "challenger": registration["version"],
            "champion": registration["version"],
        }
    else:
        assert run.info.status == "FAILED"
        assert versions == []
    assert client.search_registered_models(filter_string="name LIKE '%promotion-lock%'") == []


def broken_copy(model_folder, tmp_path, damage: str):
    folder = tmp_path / "mnt-models"
    shutil.copytree(model_folder, folder)
    if damage == "missing MLmodel":
        (folder / "MLmodel").unlink()
    else:
        skops = folder / "model.skops"
        skops.write_bytes(skops.read_bytes()[: skops.stat().st_size // 2])
    return folder


def test_predictor_refuses_a_folder_without_mlmodel(model_folder, tmp_path):
    folder = broken_copy(model_folder, tmp_path, "missing MLmodel")
    assert f"no MLmodel file in {folder}" in refusal(folder, tmp_path / "predictor.log")


def test_predictor_refuses_a_truncated_model_file(model_folder, tmp_path):
    folder = broken_copy(model_folder, tmp_path, "truncated model.skops")
    said = refusal(folder, tmp_path / "predictor.log")
    # The log shortens long paths in the middle; the folder's end and the file's name stay.
    assert "cannot serve " in said and f"{folder.name}/model.skops: not a readable skops file" in said


def test_predictor_names_the_truncated_file(model_folder, tmp_path):
    folder = broken_copy(model_folder, tmp_path, "truncated model.skops")
    assert "model.skops: not a readable skops file (BadZipFile" in refusal(folder, tmp_path / "predictor.log")


def test_promotion_lock_held_by_another_registration_times_out_by_name(stack):
    from lifecycle.registry.lock import PromotionLockError, promotion_lock

    client = MlflowClient()
    client.create_registered_model("ames-held.promotion-lock", description="held by another registration")
    try:
        with pytest.raises(PromotionLockError, match="held the promotion lock 'ames-held.promotion-lock' for over 1 s"):
            with promotion_lock(client, "ames-held", wait=1):
                pass
    finally:
        client.delete_registered_model("ames-held.promotion-lock")


def test_promotion_lock_left_by_a_dead_registration_is_broken(stack, monkeypatch):
    from lifecycle.registry import lock as promotion_lock

    client = MlflowClient()
    client.create_registered_model("ames-stale.promotion-lock", description="held by a registration that died")
    monkeypatch.setattr(promotion_lock, "LOCK_STALE_SECONDS", 0.0)
    with promotion_lock.promotion_lock(client, "ames-stale", wait=30):
        held = client.get_registered_model("ames-stale.promotion-lock")
        assert held.description != "held by a registration that died"
    assert client.search_registered_models(filter_string="name = 'ames-stale.promotion-lock'") == []
