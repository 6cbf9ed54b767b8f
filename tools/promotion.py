"""Moving `champion` by hand, and its history (docs/promotion.md).

    python -m tools.promotion approve  --model NAME --version N [--by WHO]
    python -m tools.promotion rollback --model NAME [--by WHO]
    python -m tools.promotion history  --model NAME [--json]

The registry is MLFLOW_TRACKING_URI; without it, the local store `make run` writes (.local/mlflow.db).
A refusal or a failure prints one line and exits 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from tools.run_local import DEFAULT_WORKDIR

LOCAL_STORE = Path(DEFAULT_WORKDIR) / "mlflow.db"
NOTE_WIDTH = 60


class CommandError(RuntimeError):
    """A problem with how the command was called, before the registry is touched."""


def registry_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    if not LOCAL_STORE.is_file():  # opening it would create an empty registry
        raise CommandError(
            f"no local registry at {LOCAL_STORE} (run `make run` first) and MLFLOW_TRACKING_URI is not set"
        )
    return f"sqlite:///{LOCAL_STORE.resolve()}"


def why(entry: dict) -> str:
    """The reason for a move, in words: a promotion with both metrics, an approval, a rollback."""
    if entry["reason"] == "promotion":
        if entry.get("metric") and entry.get("new") is not None:
            old = f"{entry['old']:.5g}" if entry.get("old") is not None else "no champion"
            margin = f", margin {entry['margin']:g}" if entry.get("margin") is not None else ""
            return f"promotion: {entry['metric']} {entry['new']:.5g} vs {old}{margin}"
        return "promotion"
    if entry["reason"] == "approval":  # with what the registration decided, in short
        note = (entry.get("note") or "").split("; awaits approval")[0]
        note = note if len(note) <= NOTE_WIDTH else note[: NOTE_WIDTH - 1] + "…"
        return f"approval ({note})" if note else "approval"
    return "rollback"


def when(at: str) -> str:
    return at.replace("T", " ").removesuffix("+00:00") + " UTC" if at.endswith("+00:00") else at


def history_table(model_name: str, entries: list[dict]) -> str:
    if not entries:
        return f"{model_name}: no recorded moves of champion"
    rows = [("when", "move", "why", "by")]
    problems = []
    for entry in entries:
        if "problem" in entry:
            problems.append(f"unreadable: {entry['problem']}")
            continue
        source = f"v{entry['from']}" if entry["from"] else "none"
        rows.append((when(entry["at"]), f"{source} → v{entry['to']}", why(entry), entry.get("by") or "unknown"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)), row[3]]).rstrip()
        for row in rows
    ]
    return "\n".join([f"champion history of {model_name}", *lines, *problems])


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.promotion", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    approve = commands.add_parser("approve", help="make a version champion (manual promotion)")
    rollback = commands.add_parser("rollback", help="move champion back to the champion before it")
    history = commands.add_parser("history", help="every move of champion, oldest first")
    for sub in (approve, rollback, history):
        sub.add_argument("--model", required=True, help="registered model name")
    approve.add_argument("--version", required=True, help="the version to make champion")
    for sub in (approve, rollback):
        sub.add_argument("--by", help="who is moving champion (default: user@host)")
    history.add_argument("--json", action="store_true", help="print the entries as JSON")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> str:
    import mlflow
    from mlflow import MlflowClient

    from lifecycle.registry.approval import approve, rollback
    from lifecycle.registry.history import history

    if not args.model.strip():
        raise CommandError("--model is empty (make: MODEL=name)")
    if args.command == "approve" and not args.version.strip():
        raise CommandError("--version is empty (make: VERSION=n)")
    uri = registry_uri()
    mlflow.set_tracking_uri(uri)  # the model's files are fetched through the global registry URI
    client = MlflowClient(uri)
    if args.command == "approve":
        entry = approve(client, args.model, args.version, args.by)
        return f"{args.model} v{entry['to']} is champion (was {_shown(entry['from'])}); recorded as {entry['tag']}"
    if args.command == "rollback":
        entry = rollback(client, args.model, args.by)
        return f"{args.model} champion rolled back from v{entry['from']} to v{entry['to']}; recorded as {entry['tag']}"
    entries = history(client, args.model)
    return json.dumps(entries, indent=2) if args.json else history_table(args.model, entries)


def _shown(version: str | None) -> str:
    return f"v{version}" if version else "no champion"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from lifecycle.urls import mask_credentials

    try:
        print(run(args))
    except Exception as exc:  # a refusal or a registry failure: one line, no traceback
        from lifecycle.registry.approval import PromotionError
        from lifecycle.registry.history import HistoryError

        known = isinstance(exc, PromotionError | HistoryError | CommandError)
        message = " ".join(str(exc).split()) if known else f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        print(f"error: {mask_credentials(message)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    # Unreadable history entries are shown in the table or named by the refusal: not logged again.
    logging.getLogger("lifecycle.registry.history").setLevel(logging.ERROR)
    sys.exit(main())
