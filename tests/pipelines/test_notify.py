"""The run notification through kfp.local: the real training pipeline posts to a real HTTP server on
loopback after a run that succeeds and after one that fails, and an unreachable webhook fails nothing."""

import json

import pytest
from kfp import dsl

from components import project_component
from components.notify import notify_outcome
from lifecycle.notify.message import format_metric
from tests.conftest import ROOT, quick
from tests.pipelines.conftest import registry_state
from tests.webhook import Webhook
from tools.run_local import ensure_experiment, run_training
from tools.stack import free_port

pytestmark = pytest.mark.pipeline
MODEL = "ames-notify"


@pytest.fixture
def webhook(monkeypatch, local_runner):
    hook = Webhook()
    monkeypatch.setenv("NOTIFY_WEBHOOK_URL", hook.url)  # the steps are child processes: they inherit it
    ensure_experiment(MODEL, str(local_runner / "mlartifacts"))
    yield hook
    hook.close()


def test_a_run_that_succeeds_posts_the_registered_version_and_metrics(webhook, local_runner, ames_config):
    registration = run_training(quick(ames_config), local_runner, model_name=MODEL)
    assert len(webhook.posts) == 1
    message = webhook.posts[0]
    assert webhook.headers[0]["Content-Type"] == "application/json"
    assert set(message) == {"text", "blocks"}
    text = message["text"]
    assert text.startswith(":white_check_mark: training run training-") and " succeeded (run id " in text
    assert (
        f"Registered {MODEL} version {registration['version']} (aliases: {', '.join(registration['aliases'])})." in text
    )
    for name, value in registration["metrics"].items():
        assert f"{name} {format_metric(value)}" in text
    assert f"Promotion: {registration['promotion']['reason']}." in text
    fields = [f["text"] for b in message["blocks"] if "fields" in b for f in b["fields"]]
    assert f"*Model*\n`models:/{MODEL}/{registration['version']}`" in fields
    assert "Failed step" not in text
    assert "loopback-token" not in json.dumps(message)


def test_a_run_that_fails_posts_the_failed_step(webhook, local_runner, ames_config, tmp_path):
    before = registry_state(MODEL)
    missing = tmp_path / "no-such-file.csv"
    with pytest.raises(RuntimeError, match="ingest-dataset"):
        run_training(quick(ames_config), local_runner, data_uri=str(missing), model_name=MODEL)
    assert registry_state(MODEL) == before
    assert len(webhook.posts) == 1
    text = webhook.posts[0]["text"]
    assert text.startswith(":x: training run training-") and " failed (run id " in text
    assert "Failed step: ingest-dataset (its own message is in its log)." in text
    assert "Reported error: Task exit-handler-1 failed." in text
    assert "Registered" not in text


@project_component
def finish_quickly() -> str:
    return "done"


@dsl.pipeline(name="notify-only")
def notify_only(model_name: str):
    notify = notify_outcome(
        model_name=model_name,
        pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        pipeline_job_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        pipeline_root=dsl.PIPELINE_ROOT_PLACEHOLDER,
    )
    with dsl.ExitHandler(notify):
        finish_quickly()


def test_an_unreachable_webhook_fails_nothing(monkeypatch, local_runner, capfd):
    monkeypatch.setenv("NOTIFY_WEBHOOK_URL", f"http://user:hook-password@127.0.0.1:{free_port()}/hook?token=hook-token")
    monkeypatch.chdir(ROOT)
    notify_only(model_name=MODEL)  # raises if any task failed
    out = capfd.readouterr().out
    assert "notification NOT sent: webhook at 127.0.0.1 not reached" in out
    assert "No version of ames-notify tagged with this run" in out
    assert "hook-password" not in out and "hook-token" not in out
