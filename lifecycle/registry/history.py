"""Every move of `champion`, kept in the registry itself.

Each move is one tag on the registered model, `champion_history.000001`, `.000002`, ..., holding a
small JSON object: {at, from, to, reason, by} and, for an automatic promotion, the metric, both
values and the margin. Registered-model tags live in the registry's database beside the aliases
they describe: every machine that can move `champion` reads the same history, with nothing else
(an artifact store, a local file) to reach or keep in step. Each move writes a new key, never a
read-modify-write of one shared document, so a write that fails or lands twice cannot damage the
entries before it. Writers hold the promotion lock, so two cannot take the same number.

Entries are read back as untrusted input (anyone who can write tags can write one): a tag that is
not such an object is returned as a problem naming the tag, never raised on its own.
"""

from __future__ import annotations

import json
import logging
import math
import re
from datetime import UTC, datetime
from typing import Any

from lifecycle.urls import mask_credentials

log = logging.getLogger(__name__)

HISTORY_PREFIX = "champion_history."
REASONS = ("promotion", "approval", "rollback")
_NUMBER = re.compile(r"^\d{1,9}$")
_VERSION = re.compile(r"^[1-9]\d{0,9}$")
# Longer texts are cut on reading: a tag is shown in a terminal and a table, not stored anew.
_MAX_TEXT = 500


class HistoryError(RuntimeError):
    """The history could not be read, or does not say what a command needs."""


def history_tag(number: int) -> str:
    return f"{HISTORY_PREFIX}{number:06d}"


def _tag_number(tag: str) -> int | None:
    suffix = tag.removeprefix(HISTORY_PREFIX)
    return int(suffix) if tag.startswith(HISTORY_PREFIX) and _NUMBER.fullmatch(suffix) else None


def _model_tags(client, model_name: str) -> dict[str, str]:
    from mlflow.exceptions import MlflowException

    try:
        return dict(client.get_registered_model(model_name).tags or {})
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise HistoryError(f"registered model {model_name} does not exist") from None
        raise


def history(client, model_name: str) -> list[dict[str, Any]]:
    """The moves of `champion` of `model_name`, oldest first.

    Each entry carries its `tag`; a malformed one is {"tag", "problem"} with a message naming the tag.
    """
    tags = _model_tags(client, model_name)
    found = [(tag, value) for tag, value in tags.items() if tag.startswith(HISTORY_PREFIX)]
    # Tags with a number in order; any other name under the prefix after them, by name.
    found.sort(key=lambda item: (_tag_number(item[0]) is None, _tag_number(item[0]) or 0, item[0]))
    entries = []
    for tag, value in found:
        try:
            entries.append({"tag": tag, **parse_entry(tag, value)})
        except ValueError as exc:
            log.warning("%s", exc)
            entries.append({"tag": tag, "problem": str(exc)})
    return entries


def _text(raw: dict, key: str, tag: str, optional: bool = True) -> str | None:
    value = raw.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"history tag {tag}: {key!r} is {value!r}, not a text")
    return value[:_MAX_TEXT]


def _version(raw: dict, key: str, tag: str, optional: bool) -> str | None:
    value = raw.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not _VERSION.fullmatch(value):
        raise ValueError(f"history tag {tag}: {key!r} is {value!r}, not a version number")
    return value


def _number(raw: dict, key: str, tag: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"history tag {tag}: {key!r} is {value!r}, not a finite number")
    return float(value)


def parse_entry(tag: str, value: str) -> dict[str, Any]:
    """The fields of one history tag, checked; ValueError naming the tag otherwise."""
    if _tag_number(tag) is None:
        raise ValueError(f"history tag {tag}: its name does not end in a number")
    try:
        raw = json.loads(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"history tag {tag}: not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"history tag {tag}: a JSON {type(raw).__name__}, not an object")
    if raw.get("reason") not in REASONS:
        raise ValueError(f"history tag {tag}: reason {raw.get('reason')!r} is not one of {', '.join(REASONS)}")
    at = _text(raw, "at", tag, optional=False)
    try:
        datetime.fromisoformat(at)
    except ValueError:
        raise ValueError(f"history tag {tag}: 'at' is {at!r}, not an ISO time") from None
    entry = {
        "at": at,
        "from": _version(raw, "from", tag, optional=True),
        "to": _version(raw, "to", tag, optional=False),
        "reason": raw["reason"],
        "by": _text(raw, "by", tag),
        "metric": _text(raw, "metric", tag),
        "new": _number(raw, "new", tag),
        "old": _number(raw, "old", tag),
        "margin": _number(raw, "margin", tag),
        "note": _text(raw, "note", tag),
    }
    if entry["from"] == entry["to"]:
        raise ValueError(f"history tag {tag}: a move from v{entry['from']} to itself")
    return entry


def champion_line(entries: list[dict[str, Any]]) -> list[str]:
    """The champions a rollback walks back through, the current one last.

    A promotion or approval steps forward; a rollback that undoes the step before it steps back,
    so rolling back twice goes back two champions. A move whose `from` is not the line's last
    version (champion moved outside the recorded history) starts the line again from there:
    what came before it is not known to lead here.
    """
    line: list[str] = []
    for entry in entries:
        if entry["reason"] == "rollback" and line[-2:] == [entry["to"], entry["from"]]:
            line.pop()
            continue
        if not line or line[-1] != entry["from"]:
            line = [entry["from"]] if entry["from"] else []
        line.append(entry["to"])
    return line


class ChampionHistory:
    """Records the moves one holder of the promotion lock makes, and takes them back on failure.

    As with AliasChanges, a tag counts as written before its request: a request that fails may
    still have been applied.
    """

    def __init__(self, client, model_name: str):
        self.client, self.model_name = client, model_name
        self.written: list[str] = []

    def record(
        self, from_version: str | None, to_version: str, reason: str, by: str | None, **details: Any
    ) -> dict[str, Any]:
        """Writes the next entry; the caller holds the promotion lock and has just moved `champion`."""
        if reason not in REASONS:
            raise HistoryError(f"unknown reason {reason!r} for a move of {self.model_name} champion")
        numbers = [n for n in map(_tag_number, _model_tags(self.client, self.model_name)) if n is not None]
        tag = history_tag(max(numbers, default=0) + 1)
        entry = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "from": from_version,
            "to": to_version,
            "reason": reason,
            "by": by,
            **{k: v for k, v in details.items() if v is not None},
        }
        self.written.append(tag)
        self.client.set_registered_model_tag(self.model_name, tag, json.dumps(entry, sort_keys=True))
        return {"tag": tag, **entry}

    def undo(self) -> bool:
        """Deletes every tag written; True when none is left."""
        clean = True
        for tag in reversed(self.written[:]):
            try:
                self.client.delete_registered_model_tag(self.model_name, tag)
                self.written.remove(tag)
            except Exception as exc:
                from mlflow.exceptions import MlflowException

                if isinstance(exc, MlflowException) and exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                    self.written.remove(tag)  # the write never landed
                    continue
                clean = False
                log.error("could not remove history tag %s of %s: %s", tag, self.model_name, mask_credentials(str(exc)))
        return clean
