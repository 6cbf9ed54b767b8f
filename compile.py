"""Compiles every pipeline to one YAML file each, byte-identical from run to run.

    python compile.py                      # writes compiled/<pipeline>.yaml
    python compile.py --check              # fails if compiled/ is stale
    python compile.py --image REPO:TAG     # the component image every task runs in

The image comes from --image, else $COMPONENT_IMAGE, else components.DEFAULT_COMPONENT_IMAGE.
The training pipeline's parameters default to the bundled Ames config, so the compiled YAML runs
as uploaded in the KFP UI.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEFAULT_OUTPUT = ROOT / "compiled"
DEFAULT_CONFIG = ROOT / "configs" / "ames.yaml"


def pipelines(default_config: Path):
    """name -> (pipeline function, parameter defaults). Imported late: the image is read at import."""
    from lifecycle.dataset.config import config_as_json, load_config
    from pipelines.batch_scoring import batch_scoring
    from pipelines.deploy import deploy
    from pipelines.monitoring import monitoring
    from pipelines.training import training

    config = load_config(default_config)
    return {
        "training": (
            training,
            {
                "config": config_as_json(config),
                "data_uri": config.data_uri,
                "model_name": config.registry.model_name,
                "promotion_margin": config.registry.margin,
            },
        ),
        "batch-scoring": (
            batch_scoring,
            {"input_uri": config.data_uri, "model_name": config.registry.model_name, "config": config_as_json(config)},
        ),
        "deploy": (deploy, {"model_name": config.registry.model_name}),
        "monitoring": (
            monitoring,
            {
                "config": config_as_json(config),
                "input_uri": config.data_uri,
                "model_name": config.registry.model_name,
                "promotion_margin": config.registry.margin,
            },
        ),
    }


def compile_all(output_dir: Path, default_config: Path = DEFAULT_CONFIG) -> list[Path]:
    from kfp import compiler

    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (func, defaults) in pipelines(default_config).items():
        path = output_dir / f"{name}.yaml"
        compiler.Compiler().compile(func, str(path), pipeline_parameters=defaults)
        written.append(path)
    return written


def stale_files(output_dir: Path, default_config: Path = DEFAULT_CONFIG) -> list[str]:
    """Differences between what is on disk and a fresh compile, as unified diffs."""
    problems = []
    with tempfile.TemporaryDirectory() as scratch:
        for fresh in compile_all(Path(scratch), default_config):
            current = output_dir / fresh.name
            if not current.exists():
                problems.append(f"{current} is missing")
                continue
            new, old = fresh.read_text(), current.read_text()
            if new != old:
                diff = difflib.unified_diff(
                    old.splitlines(), new.splitlines(), str(current), "fresh compile", lineterm="", n=1
                )
                problems.append("\n".join(list(diff)[:40]))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--output-dir", type=Path, default=DEFAULT_OUTPUT, help="where the YAML goes (default compiled/)"
    )
    parser.add_argument("--image", help="component image for every task (default $COMPONENT_IMAGE or the release tag)")
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="data-set config whose values become the parameter defaults"
    )
    parser.add_argument("--check", action="store_true", help="compile to a scratch dir and fail if output-dir differs")
    args = parser.parse_args(argv)
    if args.image:
        os.environ["COMPONENT_IMAGE"] = args.image
    sys.path.insert(0, str(ROOT))

    if args.check:
        problems = stale_files(args.output_dir, args.config)
        if problems:
            print("compiled pipelines are stale; run `python compile.py`:", file=sys.stderr)
            print("\n".join(problems), file=sys.stderr)
            return 1
        print(f"{args.output_dir} is up to date")
        return 0
    for path in compile_all(args.output_dir, args.config):
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
