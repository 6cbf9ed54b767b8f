"""tools.submit: parameters against the real compiled YAML, the health check against a real
HTTP server on loopback, and failed-task extraction from real kfp_server_api model objects."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
import threading
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path

import kfp_server_api
import pytest
import yaml

from tests.loopback import QuietHandler
from tools import submit
from tools.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
TRAINING_YAML = ROOT / "compiled" / "training.yaml"
SCORING_YAML = ROOT / "compiled" / "batch-scoring.yaml"


# ---------------------------------------------------------------- parameters


@pytest.fixture(scope="module")
def training_inputs():
    return submit.pipeline_inputs(TRAINING_YAML)


def test_inputs_come_from_the_compiled_yaml(training_inputs):
    assert {"config", "data_uri", "model_name", "promotion_margin", "git_commit"} <= set(training_inputs)
    assert training_inputs["promotion_margin"]["parameterType"] == "NUMBER_DOUBLE"
    assert submit.pipeline_name_of(TRAINING_YAML) == "training"
    assert submit.pipeline_name_of(SCORING_YAML) == "batch-scoring"


def test_params_are_typed_by_the_declared_parameter(training_inputs):
    params = submit.parse_params(
        ["model_name=houses", "promotion_margin=0.01", "data_uri=s3://b/k=v.csv"], training_inputs
    )
    assert params == {"model_name": "houses", "promotion_margin": 0.01, "data_uri": "s3://b/k=v.csv"}
    scoring = submit.pipeline_inputs(SCORING_YAML)
    assert submit.parse_params(["chunk_rows=1000"], scoring) == {"chunk_rows": 1000}


def test_a_param_without_equals_sign_is_refused(training_inputs):
    with pytest.raises(submit.SubmitError, match=r"--param 'foo': expected NAME=VALUE"):
        submit.parse_params(["foo"], training_inputs)
    with pytest.raises(submit.SubmitError, match="expected NAME=VALUE"):
        submit.parse_params(["=1"], training_inputs)


def test_an_unknown_param_names_the_ones_the_pipeline_takes(training_inputs):
    with pytest.raises(submit.SubmitError) as caught:
        submit.parse_params(["learning_rate=0.1"], training_inputs)
    message = str(caught.value)
    assert "--param learning_rate: the pipeline has no such parameter" in message
    assert "config, data_uri" in message and "model_name" in message


@pytest.mark.parametrize("text", ["-0.01", "nan", "inf", "-inf", "1e999"])
def test_a_margin_that_would_promote_a_worse_model_is_refused(training_inputs, text):
    with pytest.raises(
        submit.SubmitError,
        match=rf"^--param promotion_margin must be a finite number at least 0 .*not {float(text)!r}$",
    ):
        submit.parse_params([f"promotion_margin={text}"], training_inputs)


def test_main_refuses_a_negative_margin_before_contacting_the_server(capsys):
    code = submit.main(["--host", "http://127.0.0.1:9", "--experiment", "e2e", "--param", "promotion_margin=-1"])
    assert code == 2
    assert "--param promotion_margin must be a finite number at least 0" in capsys.readouterr().err


def test_a_badly_typed_value_names_the_parameter_and_type(training_inputs):
    with pytest.raises(submit.SubmitError, match=r"promotion_margin='lots': NUMBER_DOUBLE"):
        submit.parse_params(["promotion_margin=lots"], training_inputs)
    with pytest.raises(submit.SubmitError, match="given twice"):
        submit.parse_params(["model_name=a", "model_name=b"], training_inputs)


@pytest.mark.parametrize(
    ("parameter_type", "text", "value"),
    [
        ("BOOLEAN", "true", True),
        ("BOOLEAN", "False", False),
        ("NUMBER_INTEGER", "7", 7),
        ("STRUCT", '{"a": 1}', {"a": 1}),
        ("LIST", "[1, 2]", [1, 2]),
        ("STRING", "x=y", "x=y"),
    ],
)
def test_coerce(parameter_type, text, value):
    assert submit.coerce("p", text, parameter_type) == value


@pytest.mark.parametrize(
    ("parameter_type", "text"),
    [("BOOLEAN", "yes"), ("NUMBER_INTEGER", "1.5"), ("STRUCT", "[1]"), ("LIST", "{bad json")],
)
def test_coerce_refuses(parameter_type, text):
    with pytest.raises(submit.SubmitError, match=rf"--param p={text!r}".replace("[", r"\[").replace("{", r"\{")):
        submit.coerce("p", text, parameter_type)


def test_config_params_match_what_compile_puts_in(training_inputs):
    compiled = {name: spec.get("defaultValue") for name, spec in training_inputs.items()}
    from_config = submit.config_params(ROOT / "configs" / "ames.yaml", training_inputs)
    assert set(from_config) == {"config", "data_uri", "model_name", "promotion_margin"}
    assert json.loads(from_config["config"]) == json.loads(compiled["config"])
    assert from_config["data_uri"] == compiled["data_uri"] and from_config["model_name"] == compiled["model_name"]
    telco = submit.config_params(ROOT / "configs" / "telco_churn.yaml", submit.pipeline_inputs(SCORING_YAML))
    assert set(telco) == {"config", "input_uri", "model_name"} and telco["input_uri"].endswith("telco_churn.csv.gz")
    assert json.loads(telco["config"])["monitoring"]["psi"] == 0.2  # the drift thresholds travel with it


def test_a_bad_config_file_is_named(tmp_path, training_inputs):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n")
    with pytest.raises(submit.SubmitError, match=r"--config .*bad\.yaml"):
        submit.config_params(bad, training_inputs)


def test_packages_that_are_missing_or_not_pipelines(tmp_path):
    with pytest.raises(submit.SubmitError, match=r"no-such\.yaml: no such pipeline package"):
        submit.pipeline_inputs(tmp_path / "no-such.yaml")
    other = tmp_path / "deployment.yaml"
    other.write_text(yaml.safe_dump({"apiVersion": "apps/v1", "kind": "Deployment"}))
    with pytest.raises(submit.SubmitError, match="not a compiled KFP pipeline"):
        submit.pipeline_inputs(other)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("root: x\npipelineInfo: {name: p}\n", "not a compiled KFP pipeline: `root` is a str, expected a mapping"),
        ("root: {}\n", "not a compiled KFP pipeline: no `pipelineInfo` key"),
        ("root: {}\npipelineInfo: {}\n", "`pipelineInfo.name` is empty, expected a string"),
        (
            "root: {inputDefinitions: {parameters: [a, b]}}\npipelineInfo: {name: p}\n",
            "`root.inputDefinitions.parameters` is a list, expected a mapping",
        ),
        (
            "root: {inputDefinitions: {parameters: {a: 1}}}\npipelineInfo: {name: p}\n",
            "`root.inputDefinitions.parameters.a` is a int, expected a mapping",
        ),
        ("- a\n- b\n", "the document is a list, expected a mapping"),
        ("", "the document is empty, expected a mapping"),
    ],
)
def test_main_exits_2_naming_what_is_wrong_with_the_package(tmp_path, capsys, content, problem):
    package = tmp_path / "odd.yaml"
    package.write_text(content)
    assert submit.main(["--host", "http://127.0.0.1:9", "--experiment", "e", "--package", str(package)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {package}: ") and problem in err and err.count("\n") == 1


@pytest.mark.parametrize("kind", ["directory", "gzip"])
def test_an_unreadable_package_is_a_one_line_error_with_exit_code_2(tmp_path, kind):
    if kind == "directory":
        package, problem = tmp_path, "is a directory, not a pipeline package"
    else:
        package, problem = tmp_path / "training.yaml.gz", "not UTF-8 text (byte 1)"
        package.write_bytes(gzip.compress(TRAINING_YAML.read_bytes()))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.submit",
            "--host",
            "http://127.0.0.1:9",
            "--experiment",
            "e",
            "--package",
            str(package),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {package}: {problem}") and done.stderr.count("\n") == 1


def test_version_names_carry_commit_and_time():
    at = datetime(2026, 11, 24, 16, 8, 12, tzinfo=UTC)
    assert (
        submit.default_version_name("training", "0123456789abcdef0123", at) == "training-0123456789ab-20261124-160812"
    )
    assert submit.default_version_name("training", "", at) == "training-nogit-20261124-160812"


def test_compile_now_uses_the_given_image(tmp_path):
    package = submit.compile_package("training", "registry.example/components:abc123", tmp_path)
    assert "image: registry.example/components:abc123" in package.read_text()
    assert set(submit.pipeline_inputs(package)) == set(submit.pipeline_inputs(TRAINING_YAML))


# ---------------------------------------------------------------- health check


class _Health(QuietHandler):
    status = 200
    paths: list

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.paths.append(self.path)
        body = json.dumps({"commit_sha": "x"} if self.status == 200 else {"error": "not ready"}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def health_server():
    """A real HTTP server on a free loopback port; yields (base URL, handler class to set status on)."""
    handler = type("Handler", (_Health,), {"status": 200, "paths": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_healthy_server_passes_first_time(health_server):
    url, handler = health_server
    submit.check_health(url + "/", attempts=3, delay=0.01, timeout=2)
    assert handler.paths == ["/apis/v2beta1/healthz"]


def test_503_is_retried_then_reported(health_server):
    url, handler = health_server
    handler.status = 503
    with pytest.raises(submit.Unreachable) as caught:
        submit.check_health(url, attempts=3, delay=0.01, timeout=2)
    assert len(handler.paths) == 3
    assert url in str(caught.value) and "HTTP 503" in str(caught.value) and "3 attempts" in str(caught.value)


def test_closed_port_is_reported_with_the_host():
    host = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(submit.Unreachable) as caught:
        submit.check_health(host, attempts=2, delay=0.01, timeout=1)
    assert f"cannot reach the KFP API at {host}" in str(caught.value)
    assert "refused" in str(caught.value).lower()


def test_main_exits_2_naming_the_host_when_unreachable(capsys):
    host = f"http://127.0.0.1:{free_port()}"
    code = submit.main(["--host", host, "--experiment", "e2e", "--health-attempts", "1", "--param", "model_name=x"])
    assert code == 2
    assert host in capsys.readouterr().err


def test_main_checks_params_before_contacting_the_server(capsys):
    code = submit.main(["--host", "http://127.0.0.1:9", "--experiment", "e2e", "--param", "deployy=true"])
    assert code == 2
    assert "--param deployy: the pipeline has no such parameter" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:secretpw@127.0.0.1:1", "http://***@127.0.0.1:1"),
        (
            "https://u:p@ss@kfp.example/x?token=secret#/runs/details/r1",
            "https://***@kfp.example/x?token=***#/runs/details/r1",
        ),
        ("user:secretpw@kfp.example:8888", "***@kfp.example:8888"),
        ("http://u:secretpw@[::1", "http://***@[::1"),
        ("http://localhost:8080/#/runs/details/r1", "http://localhost:8080/#/runs/details/r1"),
    ],
)
def test_urls_are_shown_without_credentials_or_query(url, shown):
    assert submit.display_url(url) == shown


def test_unreachable_host_is_named_without_its_query():
    host = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(submit.Unreachable) as caught:
        submit.check_health(f"{host}?token=secret", attempts=1, delay=0.01, timeout=1)
    assert f"cannot reach the KFP API at {host}?token=*** " in str(caught.value) and "secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        ("http://user:secretpw@127.0.0.1:1", "--host http://***@127.0.0.1:1: user:password@ is not supported"),
        ("user:secretpw@127.0.0.1:1", "--host ***@127.0.0.1:1: expected http://HOST[:PORT]"),
        ("http://user:secretpw@127.0.0.1:abc", "--host http://***@127.0.0.1:abc: not a valid URL"),
        ("http://127.0.0.1:1/?token=secret", "--host http://127.0.0.1:1/?token=***: a base URL takes no ?query"),
    ],
)
def test_a_host_that_is_not_a_base_url_is_refused_without_its_secrets(host, problem):
    done = subprocess.run(
        [sys.executable, "-m", "tools.submit", "--host", host, "--experiment", "e2e"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and problem in done.stderr and "secret" not in done.stderr


# ---------------------------------------------------------------- failed tasks


def _run_from_api(body: dict) -> kfp_server_api.V2beta1Run:
    """A V2beta1Run as kfp.Client.get_run returns it: the API's JSON through the generated deserializer."""

    class Response:
        data = json.dumps(body)

    return kfp_server_api.ApiClient().deserialize(Response(), "V2beta1Run")


def test_failed_leaf_task_is_found_and_its_dags_are_left_out():
    run = _run_from_api(
        {
            "run_id": "run-1",
            "state": "FAILED",
            "error": {"code": 9, "message": "Run failed"},
            "run_details": {
                "task_details": [
                    {"task_id": "t-root", "display_name": "training", "state": "FAILED"},
                    {
                        "task_id": "t-ingest",
                        "display_name": "ingest-dataset",
                        "state": "SUCCEEDED",
                        "parent_task_id": "t-root",
                    },
                    {"task_id": "t-for", "display_name": "candidates", "state": "FAILED", "parent_task_id": "t-root"},
                    {
                        "task_id": "t-it0",
                        "display_name": "iteration-0",
                        "state": "SUCCEEDED",
                        "parent_task_id": "t-for",
                    },
                    {
                        "task_id": "t-cv",
                        "display_name": "cross-validate",
                        "state": "FAILED",
                        "parent_task_id": "t-for",
                        "pod_name": "training-abc-system-container-impl-123",
                        "error": {"code": 2, "message": "column 'Lot_Area' has text values"},
                    },
                ]
            },
        }
    )
    assert submit.failed_tasks(run) == [
        submit.FailedTask(
            "cross-validate", "column 'Lot_Area' has text values", "training-abc-system-container-impl-123", "t-cv"
        )
    ]
    text = submit.describe_failure(run)
    assert text.startswith("run run-1 ended FAILED: Run failed")
    assert "failed task cross-validate: column 'Lot_Area' has text values" in text
    assert "kubectl -n kubeflow logs training-abc-system-container-impl-123" in text


def test_message_falls_back_to_the_state_history():
    task = kfp_server_api.V2beta1PipelineTaskDetail(
        task_id="t-1",
        display_name="register-model",
        state="FAILED",
        state_history=[
            kfp_server_api.V2beta1RuntimeStatus(state="RUNNING"),
            kfp_server_api.V2beta1RuntimeStatus(
                state="FAILED",
                error=kfp_server_api.GoogleRpcStatus(code=2, message="MLflow at http://mlflow:5000 unreachable"),
            ),
        ],
    )
    run = kfp_server_api.V2beta1Run(
        run_id="run-2", state="FAILED", run_details=kfp_server_api.V2beta1RunDetails(task_details=[task])
    )
    assert submit.failed_tasks(run) == [
        submit.FailedTask("register-model", "MLflow at http://mlflow:5000 unreachable", "", "t-1")
    ]


def test_a_failed_task_without_any_message_is_still_named():
    task = kfp_server_api.V2beta1PipelineTaskDetail(
        task_id="t-9", display_name="validate-dataset", state="FAILED", pod_name="pod-9"
    )
    run = kfp_server_api.V2beta1Run(
        run_id="run-3", state="FAILED", run_details=kfp_server_api.V2beta1RunDetails(task_details=[task])
    )
    assert submit.failed_tasks(run) == [submit.FailedTask("validate-dataset", "no message recorded", "pod-9", "t-9")]


def test_a_run_that_failed_before_any_task_has_only_its_own_error():
    run = _run_from_api({"run_id": "run-4", "state": "FAILED", "error": {"message": "invalid pipeline spec"}})
    assert submit.failed_tasks(run) == []
    assert submit.describe_failure(run) == "run run-4 ended FAILED: invalid pipeline spec"


def test_a_succeeded_run_has_no_failed_tasks():
    run = _run_from_api(
        {
            "run_id": "run-5",
            "state": "SUCCEEDED",
            "run_details": {"task_details": [{"task_id": "a", "display_name": "ingest-dataset", "state": "SUCCEEDED"}]},
        }
    )
    assert submit.failed_tasks(run) == []


# ---------------------------------------------------------------- recurring runs


@pytest.mark.parametrize(
    ("text", "cron"),
    [
        ("0 6 * * *", "0 0 6 * * *"),
        ("  */15  *  * * 1-5 ", "0 */15 * * * 1-5"),
        ("30 0 6 ? * MON", "30 0 6 ? * MON"),
        ("@daily", "@daily"),
    ],
)
def test_a_schedule_is_given_to_kfp_with_seconds_first(text, cron):
    assert submit.kfp_cron(text) == cron


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "got 0 field"),
        ("6 * * *", "got 4 field"),
        ("0 0 6 * * * 2027", "got 7 field"),
        ("0 6 * * ;rm", "';rm' is not a cron field"),
        ("@fortnightly", "got 1 field"),
    ],
)
def test_a_schedule_that_is_not_cron_is_refused_naming_it(text, problem):
    with pytest.raises(submit.SubmitError, match=re.escape(problem)):
        submit.kfp_cron(text)


def test_schedule_and_wait_together_are_refused(capsys):
    with pytest.raises(SystemExit) as exited:
        submit.parse_args(["--experiment", "x", "--schedule", "0 6 * * *", "--wait"])
    assert exited.value.code == 2 and "--wait follows one run" in capsys.readouterr().err


class _PipelinesApi(QuietHandler):
    """The KFP v2beta1 endpoints `tools.submit --schedule` calls, answering as the API server does;
    every request the real kfp.Client sends is kept."""

    requests: list

    def _answer(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.requests.append((self.command, self.path.split("?")[0], body))
        path = self.path.split("?")[0]
        answers = {
            ("GET", "/apis/v2beta1/healthz"): {"commit_sha": "x"},
            ("GET", "/apis/v2beta1/pipelines"): {},  # no pipeline of that name yet
            ("POST", "/apis/v2beta1/pipelines/upload"): {"pipeline_id": "p1", "display_name": "monitoring"},
            ("GET", "/apis/v2beta1/pipelines/p1/versions"): {"pipeline_versions": [{"pipeline_version_id": "v1"}]},
            ("GET", "/apis/v2beta1/experiments"): {},
            ("POST", "/apis/v2beta1/experiments"): {"experiment_id": "e1", "display_name": "monitoring"},
        }
        if (self.command, path) == ("POST", "/apis/v2beta1/recurringruns"):
            answer = {"recurring_run_id": "r1", **json.loads(body)}
        else:
            answer = answers.get((self.command, path))
        data = json.dumps(answer if answer is not None else {"error": "not found"}).encode()
        self.send_response(200 if answer is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer


def test_a_schedule_creates_one_recurring_run_with_the_configs_parameters(tmp_path, capsys):
    handler = type("Handler", (_PipelinesApi,), {"requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    summary = tmp_path / "submission.json"
    try:
        code = submit.main(
            [
                *("--host", f"http://127.0.0.1:{server.server_address[1]}", "--experiment", "monitoring"),
                *("--pipeline", "monitoring", "--config", str(ROOT / "configs" / "telco_churn.yaml")),
                *("--param", "input_uri=s3://data/today.csv", "--schedule", "0 6 * * *"),
                *("--summary-json", str(summary)),
            ]
        )
    finally:
        server.shutdown()
        server.server_close()
    assert code == 0, capsys.readouterr().err
    [created] = [json.loads(body) for method, path, body in handler.requests if path.endswith("/recurringruns")]
    assert not [path for _, path, _ in handler.requests if path.endswith("/runs")]  # no one-off run as well
    assert created["trigger"] == {"cron_schedule": {"cron": "0 0 6 * * *"}}
    assert int(created["max_concurrency"]) == 1 and created["no_catchup"] is True
    assert created["pipeline_version_reference"] == {"pipeline_id": "p1", "pipeline_version_id": "v1"}
    parameters = created["runtime_config"]["parameters"]
    assert parameters["input_uri"] == "s3://data/today.csv" and parameters["model_name"] == "telco-churn"
    assert json.loads(parameters["config"])["name"] == "telco_churn"
    written = json.loads(summary.read_text())
    assert (written["run_id"], written["schedule"], written["state"]) == ("r1", "0 0 6 * * *", "SCHEDULED")
    assert written["run_url"].endswith("/#/recurringrun/details/r1")
