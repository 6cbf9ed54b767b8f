"""Building and sending the run notification: message content, credential hygiene, failed-step discovery,
the registry lookup on a real MLflow store, and sending that never raises."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time

import pytest
from kfp import dsl

from lifecycle.notify.message import build_message, format_metric, redact, slack_escape
from lifecycle.notify.outcome import (
    RunOutcome,
    final_status,
    gather_outcome,
    registered_by_run,
    steps_in_pipeline_root,
)
from lifecycle.notify.webhook import post_message, send_notification
from lifecycle.urls import mask_credentials
from tests.loopback import LoopbackServer, QuietHandler
from tests.webhook import Webhook
from tools.stack import free_port

REGISTRATION = {
    "model_name": "ames-house-prices",
    "version": "3",
    "model_uri": "models:/ames-house-prices/3",
    "aliases": ["challenger", "champion"],
    "promotion": "test_rmsle 0.10760 beats champion v2 0.11200 by more than 0",
    "metrics": {"test_rmsle": 0.10760, "test_r2": 0.93641, "test_rmse": 22586.82, "test_mae": 14091.84},
    "run_id": "fe9bf6e4",
}


def succeeded(**changes) -> RunOutcome:
    fields = dict(
        state="SUCCEEDED",
        pipeline="training",
        job_name="training-2026-11-24",
        run_id="run-42",
        model_name="ames-house-prices",
        registration=dict(REGISTRATION),
    )
    return RunOutcome(**{**fields, **changes})


def failed(**changes) -> RunOutcome:
    fields = dict(
        state="FAILED",
        pipeline="training",
        job_name="training-2026-11-24",
        run_id="run-42",
        model_name="ames-house-prices",
        error_message="Task exit-handler-1 failed.",
    )
    return RunOutcome(**{**fields, **changes})


def all_text(message: dict) -> str:
    return json.dumps(message)


# ---- message content -------------------------------------------------------------------------


def test_success_names_version_aliases_metrics_and_promotion():
    message = build_message(succeeded(), environ={})
    assert message["text"].splitlines() == [
        ":white_check_mark: training run training-2026-11-24 succeeded (run id run-42).",
        "Registered ames-house-prices version 3 (aliases: challenger, champion).",
        "Holdout metrics: test_mae 14,092, test_r2 0.9364, test_rmse 22,587, test_rmsle 0.1076.",
        "Promotion: test_rmsle 0.10760 beats champion v2 0.11200 by more than 0.",
    ]
    fields = [f["text"] for block in message["blocks"] if "fields" in block for f in block["fields"]]
    assert fields == [
        "*Model*\n`models:/ames-house-prices/3`",
        "*Aliases*\nchallenger, champion",
        "*test_mae*\n14,092",
        "*test_r2*\n0.9364",
        "*test_rmse*\n22,587",
        "*test_rmsle*\n0.1076",
    ]


def test_blocks_are_slack_shaped():
    message = build_message(succeeded(tracking_uri="http://mlflow.mlflow.svc.cluster.local:5000"), environ={})
    assert set(message) == {"text", "blocks"}
    for block in message["blocks"]:
        assert block["type"] in {"section", "context"}
        if block["type"] == "section":
            assert ("text" in block) != ("fields" in block)
            assert len(block.get("fields", [])) <= 10
    assert message["blocks"][-1]["elements"][0]["text"].endswith("MLflow http://mlflow.mlflow.svc.cluster.local:5000")


def test_at_most_ten_fields_however_many_metrics():
    many = {f"metric_{i:02d}": float(i) for i in range(15)}
    message = build_message(succeeded(registration={**REGISTRATION, "metrics": many}), environ={})
    fields = [b for b in message["blocks"] if "fields" in b][0]["fields"]
    assert len(fields) == 10
    assert "metric_14 14" in message["text"]


def test_success_without_a_registered_version_says_so():
    text = build_message(succeeded(registration=None), environ={})["text"]
    assert "No version of ames-house-prices tagged with this run was found in the registry." in text


def test_failure_names_the_failed_step_the_error_and_what_completed():
    outcome = failed(failed_steps=["validate-dataset"], completed_steps=["ingest-dataset", "plan-candidates"])
    assert build_message(outcome, environ={})["text"].splitlines() == [
        ":x: training run training-2026-11-24 failed (run id run-42).",
        "Failed step: validate-dataset (its own message is in its log).",
        "Reported error: Task exit-handler-1 failed.",
        "Completed steps: ingest-dataset, plan-candidates.",
    ]


def test_failure_in_the_cluster_points_at_the_kfp_ui():
    text = build_message(failed(error_message="", completed_steps=None), environ={})["text"]
    assert "The failed step and its log are shown on the run in the KFP UI." in text
    assert "Reported error" not in text


def test_failure_after_registering_still_reports_the_version():
    """E.g. the deploy step failed: the version exists and the message says so."""
    text = build_message(failed(registration=dict(REGISTRATION), failed_steps=[]), environ={})["text"]
    assert text.startswith(":x:") and "Registered ames-house-prices version 3" in text


def test_unreadable_registry_is_reported():
    text = build_message(
        succeeded(registration=None, registry_problem="MlflowException: connection refused"), environ={}
    )["text"]
    assert "The registry could not be read: MlflowException: connection refused" in text


def mrkdwn_texts(message: dict) -> list[str]:
    texts = [message["text"]]
    for block in message["blocks"]:
        texts += [block["text"]["text"]] if "text" in block else []
        texts += [f["text"] for f in block.get("fields", []) + block.get("elements", [])]
    return texts


def test_values_from_the_run_cannot_mention_or_link():
    outcome = failed(
        job_name="job <!channel>",
        error_message="column 'x' expects double, got '<@U123> & <https://evil|click>'",
        failed_steps=["step <!here>"],
        completed_steps=["a>b"],
        registration={**REGISTRATION, "aliases": ["<@U1>"], "promotion": "R&D <!everyone>", "metrics": {"x<y": 1.0}},
        registry_problem="<!subteam^S1>",
    )
    message = build_message(outcome, environ={})
    for text in mrkdwn_texts(message):
        assert "<" not in text and ">" not in text
        assert not re.search(r"&(?!amp;|lt;|gt;)", text)  # every & starts one of the three entities
    assert "job &lt;!channel&gt; failed" in message["text"]
    assert "got '&lt;@U123&gt; &amp; &lt;https://evil|click&gt;'" in message["text"]
    assert "Promotion: R&amp;D &lt;!everyone&gt;." in message["text"]


def test_values_are_escaped_once():
    assert slack_escape("R&D <x>") == "R&amp;D &lt;x&gt;"
    text = build_message(failed(job_name="R&D", error_message="a &amp; b"), environ={})["text"]
    assert "run R&amp;D failed" in text and "Reported error: a &amp;amp; b" in text  # shows as typed: "a &amp; b"


@pytest.mark.parametrize("offset", range(4))  # so that one of them cuts where an entity would be
def test_a_long_message_is_not_cut_inside_an_entity(offset):
    message = build_message(failed(error_message="x" * offset + "<" * 2000), environ={})
    for text in mrkdwn_texts(message):
        assert len(text) <= 2900 and not re.search(r"&[a-z]*$", text)


def test_metric_formatting():
    assert [format_metric(v) for v in (0.107601, 0.93641, 22586.82, -1234.5, 3.0)] == [
        "0.1076",
        "0.9364",
        "22,587",
        "-1,234",
        "3",
    ]


# ---- credential hygiene --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, clean",
    [
        ("http://user:pa55@mlflow.example:5000/api", "http://***@mlflow.example:5000/api"),
        ("s3://AKIA:secret@bucket/key?X-Amz-Signature=abc", "s3://***@bucket/key?X-Amz-Signature=***"),
        (
            "see https://hooks.slack.com/services/T0/B0/xyz?token=t#frag now",
            "see https://hooks.slack.com/services/T0/B0/xyz?token=***#frag now",
        ),
        ("registry postgresql://u:p@ss@db/mlflow refused", "registry postgresql://***@db/mlflow refused"),
        ("models:/ames-house-prices/3", "models:/ames-house-prices/3"),
        ("no url here", "no url here"),
    ],
)
def test_urls_in_messages_lose_their_credentials(text, clean):
    assert redact(text, environ={}) == clean


def test_environment_secret_values_are_masked():
    env = {"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI-sentinel", "NOTIFY_WEBHOOK_URL": "https://hooks.example/T/B/tok"}
    outcome = failed(
        error_message="S3 refused key wJalrXUtnFEMI-sentinel while posting to https://hooks.example/T/B/tok"
    )
    message = build_message(outcome, environ=env)
    assert "wJalrXUtnFEMI-sentinel" not in all_text(message)
    assert "hooks.example/T/B/tok" not in all_text(message)
    assert "[AWS_SECRET_ACCESS_KEY]" in message["text"] and "[NOTIFY_WEBHOOK_URL]" in message["text"]


def test_tracking_uri_credentials_never_reach_the_message():
    outcome = succeeded(tracking_uri="https://admin:sentinel-password@mlflow.example/?token=sentinel-token")
    text = all_text(build_message(outcome, environ={}))
    assert "sentinel" not in text and "mlflow.example" in text


def test_the_gathered_tracking_uri_is_masked(monkeypatch, tmp_path):
    """The outcome is logged and returned as it is gathered, before any message is built."""
    import mlflow

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    mlflow.set_tracking_uri(f"http://admin:p@ss-sentinel@127.0.0.1:{free_port()}")
    try:
        outcome = gather_outcome({"state": "SUCCEEDED"}, "m", "r", "job", pipeline_root=str(tmp_path))
    finally:
        mlflow.set_tracking_uri(None)
    assert outcome.tracking_uri.startswith("http://***@127.0.0.1:")
    assert "sentinel" not in json.dumps(outcome.to_dict())


@pytest.mark.parametrize(
    "value",
    ["hooks.slack.com/services/T0/B0/SECRETTOKEN123\n", "https://hooks.slack.com/services/T0/B0/SECRETTOKEN123?x=1\n"],
)
def test_the_webhook_url_is_masked_as_it_is_sent_stripped(value):
    stripped = value.strip()
    env = {"NOTIFY_WEBHOOK_URL": value}
    assert redact(f"posting to {stripped} failed", env) == "posting to [NOTIFY_WEBHOOK_URL] failed"
    # the form a URL takes once its query is gone is masked too: for Slack the path is the secret
    assert "SECRETTOKEN123" not in redact(f"posting to {mask_credentials(stripped)} failed", env)
    assert "SECRETTOKEN123" not in redact(f"posting to {stripped.partition('?')[0]} failed", env)


def test_redact_reads_the_process_environment_by_default(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-sentinel-123")
    assert redact("auth tok-sentinel-123 failed") == "auth [MLFLOW_TRACKING_TOKEN] failed"


# ---- what the exit task is given -----------------------------------------------------------------


def test_final_status_from_the_sdk_object_and_from_the_runner_dict():
    sdk = dsl.PipelineTaskFinalStatus(
        state="FAILED",
        pipeline_job_resource_name="r",
        pipeline_task_name="exit-handler-1",
        error_code=1,
        error_message="Task exit-handler-1 failed.",
    )
    assert final_status(sdk) == {
        "state": "FAILED",
        "task": "exit-handler-1",
        "error_message": "Task exit-handler-1 failed.",
    }
    # The cluster's driver sends an empty error on success and failure alike.
    assert final_status({"state": "SUCCEEDED", "pipelineTaskName": "exit-handler-1", "error": {}}) == {
        "state": "SUCCEEDED",
        "task": "exit-handler-1",
        "error_message": "",
    }


def test_steps_from_a_local_pipeline_root(tmp_path):
    run = tmp_path / "training-1"
    for task in (
        "ingest-dataset",
        "plan-candidates",
        "for-loop-2-iteration-0/cross-validate",
        "for-loop-2-iteration-1/cross-validate",
    ):
        (run / task).mkdir(parents=True)
        (run / task / "executor_output.json").write_text("{}")
        time.sleep(0.01)  # completion order is the files' order in time
    (run / "split-dataset" / "train").mkdir(parents=True)  # started, wrote an artifact directory, never finished
    completed, unfinished = steps_in_pipeline_root(str(tmp_path), "training-1")
    assert completed == [
        "ingest-dataset",
        "plan-candidates",
        "cross-validate (iteration 0)",
        "cross-validate (iteration 1)",
    ]
    assert unfinished == ["split-dataset"]


@pytest.mark.parametrize("root", ["{{$.pipeline_root}}", "minio://mlpipeline/v2/artifacts", "", "/does/not/exist"])
def test_no_steps_when_the_pipeline_root_is_not_on_this_disk(root):
    assert steps_in_pipeline_root(root, "training-1") is None


def test_the_exit_task_does_not_count_itself(tmp_path):
    (tmp_path / "run" / "notify-outcome").mkdir(parents=True)
    assert steps_in_pipeline_root(str(tmp_path), "run", exclude=("notify-outcome",)) == ([], [])


# ---- the registry lookup, on a real MLflow store -----------------------------------------------------


def register_version(name: str, run_tag: str, metrics: dict) -> str:
    import mlflow
    from mlflow import MlflowClient
    from sklearn.dummy import DummyRegressor

    mlflow.set_experiment(name)
    with mlflow.start_run() as run:
        mlflow.log_metrics(metrics)
        info = mlflow.sklearn.log_model(
            DummyRegressor().fit([[0.0]], [1.0]), name="model", serialization_format="skops"
        )
    version = mlflow.register_model(
        info.model_uri, name, tags={"pipeline_run_id": run_tag, "promotion": f"reason for {run_tag}"}
    )
    MlflowClient().set_registered_model_alias(name, "challenger", version.version)
    assert version.run_id == run.info.run_id
    return str(version.version)


def test_finds_the_version_this_run_registered(mlflow_store):
    register_version("houses", "run-a", {"test_rmsle": 0.2})
    mine = register_version("houses", "run-b", {"test_rmsle": 0.1, "test_r2": 0.9})
    register_version("houses", "run-c", {"test_rmsle": 0.3})
    found = registered_by_run("houses", "run-b")
    assert found["version"] == mine and found["model_uri"] == f"models:/houses/{mine}"
    assert found["metrics"] == {"test_rmsle": 0.1, "test_r2": 0.9}
    assert found["promotion"] == "reason for run-b"
    assert found["aliases"] == []  # challenger moved on to run-c's version
    assert registered_by_run("houses", "run-z") is None
    assert registered_by_run("houses", "x' or name='houses") is None


def test_gather_outcome_reports_an_unreachable_registry_without_mlflows_long_retries(monkeypatch):
    import mlflow

    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")  # set by the caller: kept
    mlflow.set_tracking_uri(f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    try:
        outcome = gather_outcome({"state": "SUCCEEDED", "error": {}}, "houses", "run-b", "training-1")
    finally:
        mlflow.set_tracking_uri(None)
    # MLflow's default of 7 retries with exponential back-off would take about four minutes.
    assert time.monotonic() - started < 60
    assert outcome.registration is None and outcome.registry_problem
    assert "could not be read" in build_message(outcome, environ={})["text"]
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "2"


# ---- sending -------------------------------------------------------------------------------------


def test_posts_the_message_as_json():
    receiver = Webhook(path="/hook/secret-path")
    try:
        result = send_notification(succeeded(), webhook_url=receiver.url)
    finally:
        receiver.close()
    assert result["sent"] and result["detail"] == "webhook at 127.0.0.1 answered HTTP 200"
    assert receiver.posts == [result["message"]]
    assert "secret-path" not in result["detail"]


@pytest.mark.parametrize("code", [404, 500])
def test_webhook_errors_are_reported_not_raised(code):
    receiver = Webhook(code, path="/hook/secret-path")
    try:
        sent, detail = post_message(receiver.url, {"text": "x"})
    finally:
        receiver.close()
    assert (sent, detail) == (False, f"webhook at 127.0.0.1 answered HTTP {code}")


def test_unreachable_and_slow_webhooks_are_reported_not_raised():
    sent, detail = post_message(f"http://user:pw@127.0.0.1:{free_port()}/x?token=t", {"text": "x"})
    assert not sent and detail.startswith("webhook at 127.0.0.1 not reached") and "pw" not in detail
    slow = Webhook(delay=2.0, path="/hook/secret-path")
    try:
        started = time.monotonic()
        sent, detail = post_message(slow.url, {"text": "x"}, timeout=0.5)
        assert not sent and "not reached" in detail and time.monotonic() - started < 2.0
    finally:
        slow.close()
    assert post_message("not a url", {"text": "x"})[0] is False


def test_without_a_webhook_the_message_is_only_logged(monkeypatch, capsys):
    monkeypatch.delenv("NOTIFY_WEBHOOK_URL", raising=False)
    result = send_notification(failed(failed_steps=["ingest-dataset"]))
    assert not result["sent"] and "no webhook configured" in result["detail"]
    assert "Failed step: ingest-dataset" in capsys.readouterr().out


def test_a_webhook_url_from_a_secret_file_with_a_newline_is_used(monkeypatch):
    receiver = Webhook()
    monkeypatch.setenv("NOTIFY_WEBHOOK_URL", receiver.url + "\n")  # kubectl create secret --from-file
    try:
        result = send_notification(succeeded())
    finally:
        receiver.close()
    assert result["sent"] and receiver.posts == [result["message"]]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("hooks.slack.com/services/T0/B0/SECRETTOKEN123\n", "does not start with https:// (or http://)"),
        ("ftp://hooks.example/SECRETTOKEN123", "does not start with https:// (or http://)"),
        ("https:///SECRETTOKEN123", "has no host"),
        ("https://hooks.example/SECRETTOKEN123 /x", "contains whitespace or control characters"),
    ],
)
def test_a_webhook_url_that_cannot_be_posted_to_is_refused_by_name(monkeypatch, capsys, caplog, value, problem):
    monkeypatch.setenv("NOTIFY_WEBHOOK_URL", value)
    with caplog.at_level(logging.INFO, logger="lifecycle.notify.webhook"):
        result = send_notification(failed(failed_steps=["ingest-dataset"]))
    assert not result["sent"]
    assert (
        result["detail"]
        == f"$NOTIFY_WEBHOOK_URL (Secret pipeline-notify, key webhook-url) {problem}; message logged only"
    )
    out = capsys.readouterr().out
    assert "Failed step: ingest-dataset" in out  # the message is still logged
    assert "SECRETTOKEN123" not in out + caplog.text


def test_post_message_never_repeats_a_url_it_was_given():
    sent, detail = post_message("hooks.example/SECRETTOKEN123", {"text": "x"})
    assert (sent, detail) == (False, "webhook URL does not start with https:// (or http://)")


class Redirector(LoopbackServer):
    """Answers every POST with `code` and a Location header."""

    def __init__(self, location: str, code: int = 302):
        class Handler(QuietHandler):
            def do_POST(self):
                self.body()
                self.send_response(code)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

        super().__init__(Handler)
        self.thread.start()


class Recorder(LoopbackServer):
    """Records every request it receives, whatever its method (urllib turns a redirected POST into a GET)."""

    def __init__(self, path: str):
        self.requests: list[str] = []
        recorder = self

        class Handler(QuietHandler):
            def answer(self):
                recorder.requests.append(f"{self.command} {self.path}")
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = do_HEAD = answer

        super().__init__(Handler)
        self.url += path
        self.thread.start()


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("userinfo", ["", "user:s3cret-pw@"])
def test_a_redirect_is_reported_and_not_followed(code, userinfo):
    target = Recorder(path="/elsewhere")
    redirector = Redirector(target.url.replace("http://", f"http://{userinfo}") + "?token=sentinel-token", code)
    try:
        sent, detail = post_message(redirector.url + "/hook/secret-path", {"text": "x"})
    finally:
        redirector.close()
        target.close()
    assert target.requests == []  # the second server received nothing
    shown = target.url.replace("http://", "http://***@" if userinfo else "http://") + "?token=***"
    assert not sent and detail == (
        f"webhook at 127.0.0.1 answered HTTP {code} redirecting to {shown}; redirects are not followed"
    )


def test_a_webhook_that_drips_its_answer_is_given_up_on_at_the_deadline():
    """Each byte arrives well within the socket timeout; the whole answer would take 20 s."""
    stop = threading.Event()

    class Dripper(QuietHandler):
        def do_POST(self):
            self.body()
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                if stop.wait(0.5):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()

    server = LoopbackServer(Dripper)
    server.thread.start()
    try:
        started = time.monotonic()
        sent, detail = post_message(server.url + "/hook", {"text": "x"}, timeout=1.5)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        server.close()
    assert not sent and detail == "webhook at 127.0.0.1 not reached: no complete answer within 1.5 s"
    assert elapsed < 3
