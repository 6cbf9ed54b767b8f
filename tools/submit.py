"""Submits a compiled pipeline to a Kubeflow Pipelines API server and, optionally, waits for it.

    python -m tools.submit --host http://localhost:8888 --experiment ames \\
        [--pipeline training] [--package compiled/training.yaml | --compile [--image IMG]] \\
        [--config configs/ames.yaml] [--param deploy=true ...] [--wait --timeout 3600 | --schedule CRON] \\
        [--pipeline-name NAME] [--version-name NAME] [--run-name NAME] [--summary-json FILE]

Steps: check the API's health (`/apis/v2beta1/healthz`), upload the YAML as a new version of the
pipeline (creating the pipeline the first time), start a run in the named experiment and print
its id and UI address. With --wait it follows the run and, when the run fails, names each failed
task with its error and pod. The parameters default to the values compiled into the YAML (the
Ames config for `training`); --config takes them from another data-set config and --param sets
single ones, checked against the pipeline's declared inputs. With --schedule it creates a
recurring run instead (one at a time, no catch-up), e.g. `monitoring` every morning.

The e2e workflow (.github/workflows/e2e-kind.yml) submits `training` with `deploy=true` through
this command against KFP on kind; the same command works from a laptop against a port-forward.

Exit codes: 0 run started (or succeeded with --wait), 1 run failed, was canceled or timed out,
2 bad arguments or the API server cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

from lifecycle.urls import mask_credentials

ROOT = Path(__file__).resolve().parents[1]
HEALTH_PATH = "/apis/v2beta1/healthz"
TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"})
EXIT_FAILED = 1
EXIT_USAGE = 2


class SubmitError(Exception):
    """Bad input to the command (parameter, package, config); the message names what was wrong."""


class Unreachable(Exception):
    """The API server did not answer healthy within the retries."""


# ---------------------------------------------------------------- parameters

CRON_FIELD = re.compile(r"^[0-9A-Za-z*?/,\-]+$")
CRON_DESCRIPTORS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})


def kfp_cron(text: str) -> str:
    """A schedule as KFP's scheduler reads it (robfig/cron: six fields, seconds first). The usual
    five-field cron (minute hour day month weekday) gets a 0 seconds field."""
    text = " ".join(text.split())
    if text in CRON_DESCRIPTORS:
        return text
    fields = text.split(" ") if text else []
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise SubmitError(
            f"--schedule {text!r}: expected five cron fields (minute hour day month weekday), KFP's six "
            f"(seconds first) or one of {', '.join(sorted(CRON_DESCRIPTORS))}; got {len(fields)} field(s)"
        )
    bad = [f for f in fields if not CRON_FIELD.match(f)]
    if bad:
        raise SubmitError(f"--schedule {text!r}: {bad[0]!r} is not a cron field")
    return " ".join(fields)


def _kind(value) -> str:
    return "empty" if value is None else f"a {type(value).__name__}"


def package_problem(spec) -> str:
    """What keeps `spec` from being a compiled KFP pipeline this command can read; "" if nothing."""
    if not isinstance(spec, dict):
        return f"the document is {_kind(spec)}, expected a mapping"
    for key in ("root", "pipelineInfo"):
        if key not in spec:
            return f"no `{key}` key"
        if not isinstance(spec[key], dict):
            return f"`{key}` is {_kind(spec[key])}, expected a mapping"
    if not isinstance(spec["pipelineInfo"].get("name"), str):
        return f"`pipelineInfo.name` is {_kind(spec['pipelineInfo'].get('name'))}, expected a string"
    # Both levels are optional (a pipeline without parameters), but not of another type.
    definitions = spec["root"].get("inputDefinitions", {})
    if not isinstance(definitions, dict):
        return f"`root.inputDefinitions` is {_kind(definitions)}, expected a mapping"
    parameters = definitions.get("parameters", {})
    if not isinstance(parameters, dict):
        return f"`root.inputDefinitions.parameters` is {_kind(parameters)}, expected a mapping"
    for name, parameter in parameters.items():
        if not isinstance(parameter, dict):
            return f"`root.inputDefinitions.parameters.{name}` is {_kind(parameter)}, expected a mapping"
    return ""


def load_package(package: Path) -> dict:
    """The compiled pipeline spec (the YAML's first document), checked for the keys this command reads."""
    try:
        documents = list(yaml.safe_load_all(package.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise SubmitError(f"{package}: no such pipeline package (run `python compile.py`, or pass --compile)") from None
    except IsADirectoryError:
        raise SubmitError(f"{package}: is a directory, not a pipeline package (pass the compiled YAML file)") from None
    except UnicodeDecodeError as exc:
        raise SubmitError(
            f"{package}: not UTF-8 text (byte {exc.start}); a pipeline package is the compiled YAML, not an archive"
        ) from None
    except OSError as exc:
        raise SubmitError(f"{package}: cannot be read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise SubmitError(f"{package}: not valid YAML: {exc}") from None
    spec = documents[0] if documents else None
    problem = package_problem(spec)
    if problem:
        raise SubmitError(f"{package}: not a compiled KFP pipeline: {problem}")
    return spec


def pipeline_inputs(package: Path) -> dict[str, dict]:
    """The compiled pipeline's parameters: name -> {"parameterType": ..., "defaultValue"?: ...}."""
    return dict(load_package(package)["root"].get("inputDefinitions", {}).get("parameters", {}))


def pipeline_name_of(package: Path) -> str:
    return load_package(package)["pipelineInfo"]["name"]


def _margin(value, where: str) -> float:
    from lifecycle.dataset.config import ConfigError, check_margin

    try:
        return check_margin(value, where)
    except ConfigError as exc:
        raise SubmitError(str(exc)) from None


# Parameters whose value is checked beyond its type before a run starts with it.
CHECKED_PARAMS = {"promotion_margin": _margin}


def coerce(name: str, text: str, parameter_type: str):
    """A --param value as the type the pipeline declares for it."""
    try:
        if parameter_type == "BOOLEAN":
            lowered = text.strip().lower()
            if lowered not in ("true", "false"):
                raise ValueError("expected true or false")
            return lowered == "true"
        if parameter_type == "NUMBER_INTEGER":
            return int(text)
        if parameter_type == "NUMBER_DOUBLE":
            return float(text)
        if parameter_type in ("STRUCT", "LIST"):
            value = json.loads(text)
            expected = dict if parameter_type == "STRUCT" else list
            if not isinstance(value, expected):
                raise ValueError(f"expected a JSON {'object' if expected is dict else 'array'}")
            return value
    except ValueError as exc:
        raise SubmitError(f"--param {name}={text!r}: {parameter_type} parameter: {exc}") from None
    return text


def parse_params(pairs: list[str], inputs: dict[str, dict]) -> dict:
    """`key=value` strings -> typed values, each name checked against the pipeline's inputs."""
    params = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise SubmitError(f"--param {pair!r}: expected NAME=VALUE")
        if name not in inputs:
            raise SubmitError(
                f"--param {name}: the pipeline has no such parameter; it takes {', '.join(sorted(inputs))}"
            )
        if name in params:
            raise SubmitError(f"--param {name}: given twice")
        params[name] = coerce(name, text, inputs[name].get("parameterType", "STRING"))
        if name in CHECKED_PARAMS:
            params[name] = CHECKED_PARAMS[name](params[name], f"--param {name}")
    return params


def config_params(config_path: Path, inputs: dict[str, dict]) -> dict:
    """The parameters a data-set config supplies (as compile.py does), for those the pipeline takes."""
    from lifecycle.dataset.config import ConfigError, config_as_json, load_config

    try:
        config = load_config(config_path)
    except (ConfigError, OSError) as exc:
        raise SubmitError(f"--config {config_path}: {exc}") from None
    offered = {
        "config": config_as_json(config),
        "data_uri": config.data_uri,
        "input_uri": config.data_uri,
        "model_name": config.registry.model_name,
        "promotion_margin": config.registry.margin,
    }
    return {name: value for name, value in offered.items() if name in inputs}


# ---------------------------------------------------------------- health


def display_url(url: str) -> str:
    """`url` fit to print or log: credentials and query values masked, the #/ route of a UI link kept.

    Works on the text, not urlsplit, so that a malformed host is shown masked instead of raising.
    """
    return mask_credentials(url)


def host_problem(host: str) -> str:
    """Why `host` cannot be the API server's base URL, without repeating it; "" if it can."""
    try:
        parts = urllib.parse.urlsplit(host)
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "expected http://HOST[:PORT] or https://HOST[:PORT]"
    if "@" in parts.netloc:
        # urllib would take user:password@host for a host name and look it up in DNS.
        return "user:password@ is not supported: neither the health check nor kfp.Client sends it"
    if parts.query or parts.fragment:
        # The API paths are appended to the host, so a query would swallow them.
        return "a base URL takes no ?query or #fragment"
    return ""


def check_health(host: str, attempts: int = 5, delay: float = 2.0, timeout: float = 5.0) -> None:
    """Waits until GET {host}/apis/v2beta1/healthz answers 200; raises Unreachable naming the host.

    A port-forward that is still starting refuses connections for a moment, hence the retries.
    """
    url = host.rstrip("/") + HEALTH_PATH
    last = ""
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code} {exc.reason}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(getattr(exc, "reason", exc))
        if attempt < attempts:
            time.sleep(delay)
    raise Unreachable(
        mask_credentials(
            f"cannot reach the KFP API at {host} ({url}: {last}, {attempts} attempts). "
            "Is it port-forwarded? kubectl -n kubeflow port-forward svc/ml-pipeline 8888:8888"
        )
    )


# ---------------------------------------------------------------- run outcome


@dataclass
class FailedTask:
    name: str
    message: str
    pod: str = ""
    task_id: str = ""


def _state(value) -> str:
    return str(value or "").upper()


def _error_message(status) -> str:
    return (getattr(status, "message", None) or "").strip() if status is not None else ""


def failed_tasks(run) -> list[FailedTask]:
    """The FAILED tasks of a V2beta1Run, innermost first, each with the best message the API gives.

    A failure marks the task and every DAG around it (the ParallelFor, the root) as FAILED; a task
    that is the parent of another failed task only repeats the news, so it is left out.
    """
    details = getattr(run, "run_details", None)
    tasks = list(getattr(details, "task_details", None) or [])
    failed = [t for t in tasks if _state(t.state) == "FAILED"]
    parents = {t.parent_task_id for t in failed if t.parent_task_id}
    result = []
    for task in failed:
        if task.task_id and task.task_id in parents:
            continue
        message = _error_message(task.error)
        if not message:
            for status in reversed(task.state_history or []):
                message = _error_message(status.error)
                if message:
                    break
        result.append(
            FailedTask(
                task.display_name or task.task_id or "?",
                message or "no message recorded",
                task.pod_name or "",
                task.task_id or "",
            )
        )
    return result


def describe_failure(run) -> str:
    """Human-readable lines: the run's own error, then each failed task."""
    lines = [
        f"run {run.run_id} ended {_state(run.state)}"
        + (f": {_error_message(run.error)}" if _error_message(run.error) else "")
    ]
    for task in failed_tasks(run):
        where = f" (pod {task.pod}; kubectl -n kubeflow logs {task.pod})" if task.pod else ""
        lines.append(f"  failed task {task.name}: {task.message}{where}")
    return "\n".join(lines)


def wait_for_run(client, run_id: str, timeout: float, poll: float = 10.0, max_api_errors: int = 6):
    """Polls until the run reaches a terminal state. Tolerates a few API blips (port-forward restarts)."""
    deadline = time.monotonic() + timeout
    errors = 0
    last_state = ""
    while True:
        try:
            run = client.get_run(run_id)
            errors = 0
        except Exception as exc:  # urllib3/kfp_server_api raise many kinds; count them, give up after a few
            errors += 1
            if errors >= max_api_errors:
                raise
            print(mask_credentials(f"  API error while polling ({errors}/{max_api_errors}): {exc}"), file=sys.stderr)
            run = None
        if run is not None:
            state = _state(run.state)
            if state != last_state:
                print(f"  {datetime.now(UTC):%H:%M:%S} run state {state}", flush=True)
                last_state = state
            if state in TERMINAL_STATES:
                return run
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"run {run_id} did not finish within {timeout:.0f} s (last state {last_state or 'unknown'})"
            )
        time.sleep(poll)


# ---------------------------------------------------------------- naming and packaging


def git_sha() -> str:
    sha = os.environ.get("GITHUB_SHA", "")
    if sha:
        return sha
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def default_version_name(pipeline: str, sha: str, now: datetime | None = None) -> str:
    """`training-<sha12>-<UTC time>`: unique per upload, and says which commit it came from."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"{pipeline}-{sha[:12] or 'nogit'}-{stamp}"


def compile_package(pipeline: str, image: str | None, output_dir: Path) -> Path:
    """Compiles every pipeline with compile.py in a fresh process (the image is read at import)."""
    command = [sys.executable, str(ROOT / "compile.py"), "--output-dir", str(output_dir)]
    if image:
        command += ["--image", image]
    subprocess.run(command, check=True, cwd=ROOT)
    package = output_dir / f"{pipeline}.yaml"
    if not package.exists():
        raise SubmitError(
            f"compile.py wrote no {package.name}; pipelines it knows: "
            f"{', '.join(p.stem for p in output_dir.glob('*.yaml'))}"
        )
    return package


# ---------------------------------------------------------------- the command


@dataclass
class Submission:
    host: str
    pipeline_id: str
    version_id: str
    version_name: str
    experiment_id: str
    run_id: str
    run_url: str
    params: dict = field(default_factory=dict)
    schedule: str = ""  # with --schedule: run_id and run_url are the recurring run's
    state: str = ""
    failed_tasks: list = field(default_factory=list)


def upload_version(client, package: Path, pipeline_name: str, version_name: str, description: str) -> tuple[str, str]:
    """(pipeline_id, version_id): a new version of the named pipeline, creating the pipeline if missing."""
    pipeline_id = client.get_pipeline_id(pipeline_name)
    if pipeline_id is None:
        pipeline = client.upload_pipeline(str(package), pipeline_name=pipeline_name, description=description)
        pipeline_id = pipeline.pipeline_id
        versions = (
            client.list_pipeline_versions(pipeline_id, page_size=1, sort_by="created_at desc").pipeline_versions or []
        )
        if not versions:
            raise RuntimeError(f"pipeline {pipeline_name} ({pipeline_id}) was created without a version")
        return pipeline_id, versions[0].pipeline_version_id
    version = client.upload_pipeline_version(
        str(package), pipeline_version_name=version_name, pipeline_id=pipeline_id, description=description
    )
    return pipeline_id, version.pipeline_version_id


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tools.submit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--host",
        default=os.environ.get("KFP_HOST", "http://localhost:8888"),
        help="KFP API server (default $KFP_HOST or http://localhost:8888)",
    )
    p.add_argument(
        "--ui-host",
        default=os.environ.get("KFP_UI_HOST", ""),
        help="KFP UI for the printed link (default $KFP_UI_HOST, else --host); "
        "e.g. kubectl -n kubeflow port-forward svc/ml-pipeline-ui 8080:80 and http://localhost:8080",
    )
    p.add_argument("--pipeline", default="training", help="which pipeline: compiled/<pipeline>.yaml (default training)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--package", type=Path, help="compiled YAML to upload (default compiled/<pipeline>.yaml)")
    source.add_argument("--compile", action="store_true", help="compile now with compile.py instead of using compiled/")
    p.add_argument("--image", help="with --compile: the component image (default $COMPONENT_IMAGE or the release tag)")
    p.add_argument("--experiment", required=True, help="experiment to run in (created if missing)")
    p.add_argument(
        "--config", type=Path, help="take config, data_uri, model_name, promotion_margin from this data-set config"
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set one pipeline parameter (repeatable); checked against the YAML",
    )
    p.add_argument("--pipeline-name", help="pipeline name on the server (default: the YAML's pipelineInfo.name)")
    p.add_argument("--version-name", help="version name (default <pipeline>-<git sha>-<UTC time>)")
    p.add_argument("--run-name", help="run display name (default: the version name)")
    p.add_argument("--service-account", help="Kubernetes service account for the run's pods (default: the server's)")
    p.add_argument("--wait", action="store_true", help="follow the run until it ends; exit 1 if it fails")
    p.add_argument(
        "--schedule",
        metavar="CRON",
        help="create a recurring run on this schedule instead of one run ('0 6 * * *': every day at 06:00)",
    )
    p.add_argument("--timeout", type=float, default=3600, help="with --wait: seconds to wait (default 3600)")
    p.add_argument("--poll", type=float, default=10, help="with --wait: seconds between polls (default 10)")
    p.add_argument(
        "--health-attempts", type=int, default=5, help="health checks before giving up (default 5, 2 s apart)"
    )
    p.add_argument(
        "--summary-json", type=Path, help="also write the submission (ids, URL, state, failed tasks) as JSON here"
    )
    args = p.parse_args(argv)
    if args.schedule is not None:
        if args.wait:
            p.error("--wait follows one run; --schedule starts one run per tick")
        try:
            args.schedule = kfp_cron(args.schedule)
        except SubmitError as exc:
            p.error(str(exc))
    if args.image and not args.compile:
        p.error("--image only applies with --compile (a package already names its image)")
    problem = host_problem(args.host)
    if problem:
        p.error(f"--host {display_url(args.host)}: {problem}")
    if args.timeout <= 0 or args.poll <= 0 or args.health_attempts < 1:
        p.error("--timeout and --poll must be positive and --health-attempts at least 1")
    return args


def resolve_params(args: argparse.Namespace, inputs: dict[str, dict]) -> dict:
    """Config file values, then --param values on top; git_commit filled in when the pipeline takes it."""
    params = config_params(args.config, inputs) if args.config else {}
    params.update(parse_params(args.param, inputs))
    if "git_commit" in inputs and "git_commit" not in params:
        sha = git_sha()
        if sha:
            params["git_commit"] = sha
    return params


def write_summary(path: Path | None, submission: Submission) -> None:
    if path:
        path.write_text(json.dumps(asdict(submission), indent=2, default=str) + "\n")


def submit(args: argparse.Namespace, package: Path) -> int:
    inputs = pipeline_inputs(package)
    params = resolve_params(args, inputs)
    check_health(args.host, attempts=args.health_attempts)

    import kfp

    client = kfp.Client(host=args.host, ui_host=args.ui_host or args.host)
    sha = git_sha()
    pipeline_name = args.pipeline_name or pipeline_name_of(package)
    version_name = args.version_name or default_version_name(args.pipeline, sha)
    description = f"commit {sha}" if sha else "uploaded by tools.submit"
    pipeline_id, version_id = upload_version(client, package, pipeline_name, version_name, description)
    print(f"pipeline   {pipeline_name} ({pipeline_id}) version {version_name} ({version_id})")
    experiment = client.create_experiment(args.experiment)
    shown = {
        k: "<config JSON>" if k == "config" else mask_credentials(v) if isinstance(v, str) else v
        for k, v in params.items()
    }
    ui = (args.ui_host or args.host).rstrip("/")
    if args.schedule:
        # One run at a time, and no backlog of missed ticks after a pause: each run scores fresh data.
        job = client.create_recurring_run(
            experiment.experiment_id,
            args.run_name or version_name,
            cron_expression=args.schedule,
            max_concurrency=1,
            no_catchup=True,
            params=params,
            pipeline_id=pipeline_id,
            version_id=version_id,
            service_account=args.service_account,
        )
        url = display_url(f"{ui}/#/recurringrun/details/{job.recurring_run_id}")
        submission = Submission(
            display_url(args.host),
            pipeline_id,
            version_id,
            version_name,
            experiment.experiment_id,
            job.recurring_run_id,
            url,
            shown,
            schedule=args.schedule,
            state="SCHEDULED",
        )
        print(f"recurring  {job.recurring_run_id} on schedule '{args.schedule}'")
        print(f"run url    {url}")
        write_summary(args.summary_json, submission)
        return 0
    run = client.run_pipeline(
        experiment.experiment_id,
        args.run_name or version_name,
        params=params,
        pipeline_id=pipeline_id,
        version_id=version_id,
        service_account=args.service_account,
    )
    # The printed link and the summary end up in CI logs and artifacts: no credentials in them.
    url = display_url(f"{ui}/#/runs/details/{run.run_id}")
    submission = Submission(
        display_url(args.host), pipeline_id, version_id, version_name, experiment.experiment_id, run.run_id, url, shown
    )
    print(f"run id     {run.run_id}")
    print(f"run url    {url}")
    write_summary(args.summary_json, submission)
    if not args.wait:
        return 0
    try:
        finished = wait_for_run(client, run.run_id, args.timeout, args.poll)
    except TimeoutError as exc:
        submission.state = "TIMEOUT"
        write_summary(args.summary_json, submission)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    submission.state = _state(finished.state)
    if submission.state == "SUCCEEDED":
        write_summary(args.summary_json, submission)
        print(f"run {run.run_id} SUCCEEDED")
        return 0
    # A failed step's message may quote a URI it was given (a tracking or storage URI).
    submission.failed_tasks = [{k: mask_credentials(v) for k, v in asdict(t).items()} for t in failed_tasks(finished)]
    write_summary(args.summary_json, submission)
    print(f"error: {mask_credentials(describe_failure(finished))}", file=sys.stderr)
    return EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.compile:
            with tempfile.TemporaryDirectory(prefix="kfp-submit-") as scratch:
                return submit(args, compile_package(args.pipeline, args.image, Path(scratch)))
        return submit(args, args.package or ROOT / "compiled" / f"{args.pipeline}.yaml")
    except (SubmitError, Unreachable) as exc:
        print(mask_credentials(f"error: {exc}"), file=sys.stderr)
        return EXIT_USAGE
    except subprocess.CalledProcessError as exc:
        print(f"error: compiling failed ({exc})", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
