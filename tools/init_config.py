"""Drafts a data-set config from a CSV or Parquet file (`make init-config DATA=... TARGET=...`).

    python -m tools.init_config --data PATH --target COLUMN [--out PATH] [--task regression|classification] [--force]

OUT defaults to configs/<name>.yaml, the name taken from the data file's. The draft is checked with
load_config before it is written, and an existing OUT is kept unless --force. Exit codes: 0 written,
2 refused (one line on stderr naming the file, column or value).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from lifecycle.dataset.config import ConfigError
from lifecycle.dataset.draft import DraftError, dataset_name, draft_config, refuse_existing, write_draft
from lifecycle.dataset.ingest import IngestError


class UsageError(Exception):
    """A bad command line; argparse would print its usage over several lines and exit."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(message)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="CSV or Parquet file: local path or s3:// URI")
    parser.add_argument("--target", required=True, help="the column to predict")
    parser.add_argument("--out", help="where to write the config (default configs/<name>.yaml)")
    parser.add_argument("--task", choices=["regression", "classification"], help="override the inferred task")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
    return parser.parse_args(argv)


def default_out(data: str) -> Path:
    return Path("configs") / f"{dataset_name(data)}.yaml"


def one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        out = Path(args.out) if args.out else default_out(args.data)
        refuse_existing(out, args.force)  # before reading what may be a large file
        draft = draft_config(args.data, args.target, args.task)
        write_draft(draft, out, force=args.force)
    except (UsageError, DraftError, IngestError, ConfigError, OSError) as exc:
        print(f"init-config: {one_line(exc)}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    print(textwrap.fill(draft.summary, 100))
    return 0


if __name__ == "__main__":
    sys.exit(main())
