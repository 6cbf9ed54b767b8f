"""Reads the compiled pipeline YAML and checks what a cluster will run: image, caching, resources, secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import compile as compile_py

ROOT = Path(__file__).resolve().parents[2]
COMPILED = ROOT / "compiled"
PIPELINES = ["training", "batch-scoring", "deploy", "monitoring"]
# Steps that change something outside KFP: a cached result would skip the change.
SIDE_EFFECT_COMPONENTS = {"comp-register-model", "comp-score-batch", "comp-deploy-model", "comp-notify-outcome"}
SENTINELS = {
    "AWS_ACCESS_KEY_ID": "AKIASENTINELKEYID0001",
    "AWS_SECRET_ACCESS_KEY": "sentinel-secret-access-key-do-not-leak",
    "MLFLOW_TRACKING_URI": "http://user:sentinel-password@mlflow.example:5000",
    "MLFLOW_TRACKING_USERNAME": "sentinel-mlflow-user",
    "MLFLOW_TRACKING_PASSWORD": "sentinel-mlflow-password-do-not-leak",
}
# Steps that read MLFLOW_TRACKING_URI and call the registry.
MLFLOW_EXECUTORS = {
    "training": {"exec-register-model", "exec-deploy-model", "exec-notify-outcome"},
    "batch-scoring": {"exec-score-batch"},
    "deploy": {"exec-deploy-model"},
    "monitoring": {"exec-score-batch", "exec-register-model", "exec-deploy-model", "exec-notify-outcome"},
}


def compile_fresh(output_dir: Path, image: str | None = None, extra_env: dict | None = None) -> dict[str, str]:
    """Compiles in a new process (the image is read when the components are imported)."""
    env = {**os.environ, **(extra_env or {})}
    env.pop("COMPONENT_IMAGE", None)
    command = [sys.executable, str(ROOT / "compile.py"), "--output-dir", str(output_dir)]
    if image:
        command += ["--image", image]
    subprocess.run(command, check=True, env=env, cwd=ROOT, capture_output=True)
    return {name: (output_dir / f"{name}.yaml").read_text() for name in PIPELINES}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> dict[str, str]:
    return compile_fresh(tmp_path_factory.mktemp("compiled"), extra_env=SENTINELS)


def documents(text: str) -> tuple[dict, dict]:
    """The pipeline spec and the kfp-kubernetes platform spec."""
    docs = list(yaml.safe_load_all(text))
    return docs[0], (docs[1] if len(docs) > 1 else {})


def containers(spec: dict) -> dict[str, dict]:
    return {name: executor["container"] for name, executor in spec["deploymentSpec"]["executors"].items()}


def all_tasks(spec: dict):
    """(task name, task) for every task, including those inside ParallelFor sub-DAGs."""
    dags = [spec["root"]["dag"]] + [c["dag"] for c in spec["components"].values() if "dag" in c]
    for dag in dags:
        yield from dag["tasks"].items()


def test_committed_yaml_matches_a_fresh_compile(fresh):
    for name in PIPELINES:
        assert (COMPILED / f"{name}.yaml").read_text() == fresh[name], f"compiled/{name}.yaml is stale"


def test_compiling_twice_is_byte_identical(tmp_path, fresh):
    again = compile_fresh(tmp_path, extra_env=SENTINELS)
    assert again == fresh


@pytest.mark.parametrize("name", PIPELINES)
def test_every_task_runs_in_the_component_image_without_installing_anything(fresh, name):
    spec, _ = documents(fresh[name])
    for executor, container in containers(spec).items():
        assert container["image"] == "ghcr.io/kfp-tabular-lifecycle/components:0.1.0", executor
        command = " ".join(container.get("command", []) + container.get("args", []))
        assert "pip install" not in command, executor
        assert "kfp==" not in command, executor


def test_image_flag_sets_every_task_image(tmp_path):
    image = "registry.local:5000/components:abc123"
    for name, text in compile_fresh(tmp_path, image=image).items():
        images = {c["image"] for c in containers(documents(text)[0]).values()}
        assert images == {image}, name


@pytest.mark.parametrize("name", PIPELINES)
def test_every_task_sets_cpu_and_memory_requests_and_limits(fresh, name):
    spec, _ = documents(fresh[name])
    for executor, container in containers(spec).items():
        resources = container.get("resources", {})
        for key in ("resourceCpuRequest", "resourceCpuLimit", "resourceMemoryRequest", "resourceMemoryLimit"):
            assert key in resources, f"{executor} sets no {key}"


@pytest.mark.parametrize("name", PIPELINES)
def test_steps_with_side_effects_are_never_cached(fresh, name):
    spec, _ = documents(fresh[name])
    side_effect_tasks = [
        (task_name, task)
        for task_name, task in all_tasks(spec)
        if task["componentRef"]["name"] in SIDE_EFFECT_COMPONENTS
    ]
    assert side_effect_tasks, f"{name} has no step with side effects"
    for task_name, task in side_effect_tasks:
        assert not task.get("cachingOptions", {}).get("enableCache"), f"{task_name} is cached"
    cached = [t for _, t in all_tasks(spec) if t.get("cachingOptions", {}).get("enableCache")]
    if name == "training":
        assert cached, "the deterministic training steps should stay cacheable"


@pytest.mark.parametrize("name", PIPELINES)
def test_credentials_come_from_secrets_by_reference_only(fresh, name):
    text = fresh[name]
    for value in SENTINELS.values():
        assert value not in text
    assert "sentinel" not in text.lower()
    spec, platform = documents(text)
    for container in containers(spec).values():
        names = {e.get("name") for e in container.get("env", [])}
        credentials = {
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "MLFLOW_TRACKING_USERNAME",
            "MLFLOW_TRACKING_PASSWORD",
        }
        assert not names & credentials, "credential as a plain env value"
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    secret_names = {s["secretName"] for e in executors.values() for s in e.get("secretAsEnv", [])}
    assert "pipeline-s3-credentials" in secret_names


@pytest.mark.parametrize("name", PIPELINES)
def test_steps_that_call_mlflow_get_its_credentials_from_the_secret_and_no_other_step_does(fresh, name):
    _, platform = documents(fresh[name])
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    with_credentials = set()
    for executor, settings in executors.items():
        for secret in settings.get("secretAsEnv", []):
            if secret["secretName"] != "mlflow-credentials":
                continue
            with_credentials.add(executor)
            assert sorted((k["secretKey"], k["envVar"]) for k in secret["keyToEnv"]) == [
                ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_PASSWORD"),
                ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_USERNAME"),
            ], executor
            # Without the Secret the step runs and fails on the registry's 401, naming it.
            assert secret["optional"] is True, executor
    assert with_credentials == MLFLOW_EXECUTORS[name]
    # Every step told where MLflow is and that calls it has credentials for it.
    tracking = {
        e
        for e, s in executors.items()
        if any("MLFLOW_TRACKING_URI" in {k["envVar"] for k in c["keyToEnv"]} for c in s.get("configMapAsEnv", []))
    }
    assert MLFLOW_EXECUTORS[name] <= tracking


@pytest.mark.parametrize("name", PIPELINES)
def test_only_the_deploy_step_mounts_the_deployer_token(fresh, name):
    _, platform = documents(fresh[name])
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    mounts = {e: s["secretAsVolume"] for e, s in executors.items() if s.get("secretAsVolume")}
    if name == "batch-scoring":
        assert mounts == {}
        return
    assert list(mounts) == ["exec-deploy-model"]
    (mount,) = mounts["exec-deploy-model"]
    assert mount["secretName"] == "model-deployer-token"
    assert mount["mountPath"] == "/var/run/secrets/model-deployer"
    # Required: without its own token the deploy step must not run under another identity.
    assert mount["optional"] is False


def test_check_mode_passes_on_fresh_output_and_fails_on_stale(tmp_path, capsys):
    assert compile_py.main(["--output-dir", str(COMPILED), "--check"]) == 0
    for name in PIPELINES:
        (tmp_path / f"{name}.yaml").write_text((COMPILED / f"{name}.yaml").read_text())
    stale = tmp_path / "training.yaml"
    stale.write_text(stale.read_text().replace("register-model", "register-old-model", 1))
    assert compile_py.main(["--output-dir", str(tmp_path), "--check"]) == 1
    assert "training.yaml" in capsys.readouterr().err


def test_training_parameters_default_to_the_bundled_config(fresh):
    spec, _ = documents(fresh["training"])
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["model_name"]["defaultValue"] == "ames-house-prices"
    assert params["data_uri"]["defaultValue"].endswith(".csv.gz")
    assert {"config", "promotion_margin"} <= params.keys()


def test_every_training_step_runs_inside_the_exit_handler_that_notifies(fresh):
    spec, _ = documents(fresh["training"])
    root = spec["root"]["dag"]["tasks"]
    assert set(root) == {"exit-handler-1", "notify-outcome"}
    notify = root["notify-outcome"]
    assert notify["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    inputs = notify["inputs"]["parameters"]
    assert inputs["status"] == {"taskFinalStatus": {"producerTask": "exit-handler-1"}}
    assert inputs["pipeline_run_id"]["runtimeValue"]["constant"] == "{{$.pipeline_job_uuid}}"
    assert inputs["model_name"] == {"componentInputParameter": "model_name"}
    guarded = {name for name, _ in all_tasks(spec)} - {"exit-handler-1", "notify-outcome"}
    assert {"ingest-dataset", "validate-dataset", "register-model", "deploy-model"} <= guarded


def test_deploy_runs_only_when_asked_after_register(fresh):
    spec, _ = documents(fresh["training"])
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["deploy"]["defaultValue"] is False and params["deploy"]["parameterType"] == "BOOLEAN"
    assert params["serving_namespace"]["defaultValue"] == "models"
    conditions = [
        (name, task)
        for name, task in all_tasks(spec)
        if "deploy-model" in spec["components"].get(task["componentRef"]["name"], {}).get("dag", {}).get("tasks", {})
    ]
    assert len(conditions) == 1, "deploy-model should sit in exactly one dsl.If"
    name, condition = conditions[0]
    assert condition["triggerPolicy"]["condition"] == "inputs.parameter_values['pipelinechannel--deploy'] == true"
    assert "register-model" in condition["dependentTasks"]
    deploy = spec["components"][condition["componentRef"]["name"]]["dag"]["tasks"]["deploy-model"]
    assert (
        deploy["inputs"]["parameters"]["registration"]["componentInputParameter"]
        == "pipelinechannel--register-model-Output"
    )


def test_deploy_and_notify_get_settings_only_by_reference(fresh):
    spec, platform = documents(fresh["training"])
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for executor in ("exec-deploy-model", "exec-notify-outcome"):
        config_maps = {c["configMapName"] for c in executors[executor].get("configMapAsEnv", [])}
        assert config_maps == {"mlflow-client"}, executor
        secrets = {s["secretName"]: s for s in executors[executor]["secretAsEnv"]}
        assert secrets["pipeline-s3-credentials"]["optional"] is True
    notify_secret = {s["secretName"]: s for s in executors["exec-notify-outcome"]["secretAsEnv"]}["pipeline-notify"]
    assert notify_secret["keyToEnv"] == [{"envVar": "NOTIFY_WEBHOOK_URL", "secretKey": "webhook-url"}]
    assert notify_secret["optional"] is True, "without the Secret the run must still start"
    others = {e: x for e, x in executors.items() if e != "exec-notify-outcome"}
    assert not any(s["secretName"] == "pipeline-notify" for x in others.values() for s in x.get("secretAsEnv", []))
    for container in containers(spec).values():
        assert "NOTIFY_WEBHOOK_URL" not in {e.get("name") for e in container.get("env", [])}
    for component in ("comp-deploy-model", "comp-notify-outcome"):
        assert component in spec["components"]
