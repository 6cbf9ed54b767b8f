"""What the cluster checks share: the repository's cluster files, rendered kustomizations, versions.

Local kustomizations are rendered with the real `kubectl kustomize`; a test that needs it is
skipped, with the reason, only where kubectl is not installed.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
VERSIONS_FILE = MANIFESTS / "versions.env"
KIND_CONFIG = ROOT / "kind-config.yaml"
CLUSTER_SCRIPTS = (ROOT / "scripts" / "cluster-up.sh", ROOT / "scripts" / "cluster-down.sh")
REMOTE_RESOURCE = re.compile(r"^(https?://|git@|github\.com/)|\?ref=")


def cluster_files() -> list[Path]:
    """Every file of the cluster path: the kind config, manifests/ and the cluster scripts."""
    files = [KIND_CONFIG, *CLUSTER_SCRIPTS]
    files += sorted(p for p in MANIFESTS.rglob("*") if p.is_file())
    return files


def read_versions(path: Path = VERSIONS_FILE) -> dict[str, str]:
    """KEY=VALUE lines of the versions file; anything else (but comments and blank lines) is refused."""
    versions = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Z][A-Z0-9_]*)=([^\s\"'$`\\]+)", line)
        if not match:
            raise ValueError(f"{path}:{number}: not a plain KEY=VALUE line: {line!r}")
        versions[match.group(1)] = match.group(2)
    return versions


def kustomization(directory: Path) -> dict:
    return yaml.safe_load((directory / "kustomization.yaml").read_text())


def kustomization_dirs() -> list[Path]:
    return sorted(p.parent for p in MANIFESTS.rglob("kustomization.yaml"))


def is_remote(directory: Path) -> bool:
    return any(REMOTE_RESOURCE.search(r) for r in kustomization(directory).get("resources", []))


def local_kustomization_dirs() -> list[Path]:
    return [d for d in kustomization_dirs() if not is_remote(d)]


@pytest.fixture(scope="session")
def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl is not installed: it renders the kustomizations (kubectl kustomize)")
    return path


@functools.cache
def _render(kubectl_path: str, directory: Path) -> tuple[dict, ...]:
    done = subprocess.run([kubectl_path, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise AssertionError(f"kubectl kustomize {directory.relative_to(ROOT)} failed:\n{done.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


@pytest.fixture(scope="session")
def render(kubectl):
    """render(directory) -> the objects `kubectl kustomize directory` prints."""
    return lambda directory: list(_render(kubectl, Path(directory)))


@pytest.fixture(scope="session")
def objects(render) -> list[dict]:
    """What `kubectl apply -k manifests` applies."""
    return render(MANIFESTS)


@pytest.fixture(scope="session")
def versions() -> dict[str, str]:
    return read_versions()


def find(objects: list[dict], kind: str, name: str, namespace: str | None = None) -> dict:
    """The one object of this kind and name (and namespace); fails naming what is missing."""
    hits = [
        o
        for o in objects
        if o["kind"] == kind
        and o["metadata"]["name"] == name
        and (namespace is None or o["metadata"].get("namespace") == namespace)
    ]
    assert len(hits) == 1, f"expected one {kind} {namespace or ''}/{name} in the rendered manifests, found {len(hits)}"
    return hits[0]


def cluster_up_variable(name: str) -> str:
    """A variable of cluster-up.sh as bash sees it after sourcing the script (arrays one item a line)."""
    done = subprocess.run(
        ["bash", "-c", f'source "{CLUSTER_SCRIPTS[0]}"; printf "%s\\n" "${{{name}[@]}}"'],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.rstrip("\n")
