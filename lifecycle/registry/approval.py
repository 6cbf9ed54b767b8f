"""Moving `champion` by hand: approving a version, and rolling back to the champion before.

Both go through what automatic promotion goes through: the version must be a finished
registration of this model whose model file still matches its `model_sha256` tag (loaded with
lifecycle.registry.registered_model, as every use of it will be), `champion` moves under the
promotion lock (lifecycle.registry.lock), and the move is recorded in the registry's history
(lifecycle.registry.history) right after it. If anything fails once the alias moved, the alias,
its history entry and the version's approval tag are put back: nothing is left half done.
"""

from __future__ import annotations

import getpass
import logging
import socket
import tempfile
from pathlib import Path
from typing import Any

from lifecycle.modelling.serialization import UntrustedModelError
from lifecycle.registry.aliases import AliasChanges
from lifecycle.registry.history import ChampionHistory, HistoryError, champion_line, history
from lifecycle.registry.lock import PromotionLock
from lifecycle.registry.policy import APPROVAL_TAG, APPROVED, CHAMPION, alias_version
from lifecycle.registry.registered_model import MODEL_SHA256_TAG, load_registered
from lifecycle.urls import mask_credentials

log = logging.getLogger(__name__)


class PromotionError(RuntimeError):
    """A version was not made champion; the registry is left as it was."""


def actor() -> str:
    """Who moves `champion` when the caller does not say: the user on this machine."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in the environment or the password database
        user = "unknown user"
    return f"{user}@{socket.gethostname()}"


def check_finished(client, model_name: str, version: str):
    """The version, if it is a finished registration of `model_name` whose model file verifies.

    Finished: READY, with the `model_sha256` digest and the `promotion` decision that registration
    writes under the lock, from a run that ended FINISHED (a failed registration marks its run
    FAILED; a version it could not withdraw is left with that mark).
    """
    from mlflow.exceptions import MlflowException

    if not str(version).isdigit():
        raise PromotionError(f"{version!r} is not a version number of {model_name}")
    try:
        found = client.get_model_version(model_name, version)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise PromotionError(f"{model_name} v{version} does not exist in the registry") from None
        raise
    tags = found.tags or {}
    unfinished = f"{model_name} v{version} is not a finished registration"
    if found.status != "READY":
        raise PromotionError(f"{unfinished}: its status is {found.status}")
    if not tags.get(MODEL_SHA256_TAG):
        raise PromotionError(f"{unfinished}: it has no {MODEL_SHA256_TAG} tag, so its model file cannot be verified")
    if not tags.get("promotion"):
        raise PromotionError(f"{unfinished}: no promotion decision was recorded on it")
    if not found.run_id:
        raise PromotionError(f"{unfinished}: it names no run")
    status = client.get_run(found.run_id).info.status
    if status != "FINISHED":
        raise PromotionError(f"{unfinished}: its registration run {found.run_id} ended {status}")
    with tempfile.TemporaryDirectory(prefix="approve-") as scratch:
        try:
            load_registered(f"models:/{model_name}/{version}", client, Path(scratch))
        except UntrustedModelError as exc:
            raise PromotionError(f"{model_name} v{version} does not verify: {exc}") from None
    return found


def approve(client, model_name: str, version: str, who: str | None = None, wait: float | None = None) -> dict:
    """Makes `version` champion of `model_name`; the history entry written. PromotionError if refused."""
    version = str(version).strip()
    if alias_version(client, model_name, CHAMPION) == version:  # before the slow check; again under the lock
        raise PromotionError(f"{model_name} v{version} is already champion; nothing moved")
    found = check_finished(client, model_name, version)

    def refuse(champion: str | None) -> None:
        if champion == version:
            raise PromotionError(f"{model_name} v{version} is already champion; nothing moved")

    def record(champion: str | None, recorded: ChampionHistory) -> dict:
        return recorded.record(champion, version, "approval", who or actor(), note=found.tags.get("promotion"))

    doing = f"approving {model_name} v{version}"
    return _move_champion(client, model_name, version, doing, refuse, record, wait, approving=True)


def rollback(client, model_name: str, who: str | None = None, wait: float | None = None) -> dict:
    """Moves `champion` of `model_name` back to the champion before it; the history entry written."""
    current = alias_version(client, model_name, CHAMPION)
    target = earlier_champion(model_name, history(client, model_name), current)
    check_finished(client, model_name, target)

    def refuse(champion: str | None) -> None:
        # Under the lock: the champion and its history may have moved while the target was checked.
        if champion != current or earlier_champion(model_name, history(client, model_name), champion) != target:
            raise PromotionError(f"champion of {model_name} moved while rolling back to v{target}; run it again")

    def record(champion: str | None, recorded: ChampionHistory) -> dict:
        return recorded.record(champion, target, "rollback", who or actor(), note=f"rolled back from v{champion}")

    doing = f"rolling {model_name} back to v{target}"
    return _move_champion(client, model_name, target, doing, refuse, record, wait, approving=False)


def earlier_champion(model_name: str, entries: list[dict[str, Any]], current: str | None) -> str:
    """The version a rollback moves `champion` to; HistoryError saying why there is none."""
    if current is None:
        raise HistoryError(f"{model_name} has no champion; there is nothing to roll back")
    malformed = [entry["problem"] for entry in entries if "problem" in entry]
    if malformed:  # a move that cannot be read may be the one that matters
        raise HistoryError(f"cannot tell the earlier champion of {model_name}: {malformed[0]}")
    line = champion_line(entries)
    if not line:
        raise HistoryError(f"{model_name} has no recorded champion moves; there is no earlier champion")
    if line[-1] != current:
        raise HistoryError(
            f"champion of {model_name} is v{current} but its history ends at v{line[-1]} "
            f"({entries[-1]['tag']}): it was moved outside the recorded history, so the earlier champion is unknown"
        )
    if len(line) < 2:
        raise HistoryError(f"{model_name} has no champion before v{current} in its history")
    return line[-2]


def _move_champion(client, model_name, version, doing: str, refuse, record, wait, approving: bool) -> dict:
    """Under the lock: `refuse` sees the champion, it moves to `version`, `record` writes the history
    entry, then the approval tag; all or nothing."""
    lock = PromotionLock(client, model_name, wait)
    changes = AliasChanges(client, model_name, version)
    recorded = ChampionHistory(client, model_name)
    tag_before, tag_written = None, False
    lock.acquire()
    try:
        champion = changes.read(CHAMPION)
        refuse(champion)
        lock.check()
        changes.move(CHAMPION)
        entry = record(champion, recorded)
        if approving:
            tag_before = (client.get_model_version(model_name, version).tags or {}).get(APPROVAL_TAG)
            tag_written = True
            client.set_model_version_tag(model_name, version, APPROVAL_TAG, APPROVED)
        lock.release()  # raises if the lock was lost meanwhile: the move is then put back
    except BaseException as exc:
        refused = not changes.moved  # refusals come before the move
        clean = _put_back(client, model_name, version, changes, recorded, tag_written, tag_before)
        lock.release_quietly()
        if isinstance(exc, PromotionError | HistoryError) and refused:
            raise
        if not isinstance(exc, Exception):
            raise
        undone = "was put back" if clean else "was put back in part (see the log)"
        raise PromotionError(mask_credentials(f"{doing} failed and {undone}: {exc}")) from exc
    return entry


def _put_back(client, model_name, version, changes, recorded, tag_written, tag_before) -> bool:
    """Best effort, in reverse: the approval tag, champion, then its history entry if champion is back."""
    clean = True
    if tag_written:
        try:
            if tag_before is None:
                client.delete_model_version_tag(model_name, version, APPROVAL_TAG)
            else:
                client.set_model_version_tag(model_name, version, APPROVAL_TAG, tag_before)
        except Exception as exc:
            clean = False
            log.error("could not put tag %s of %s v%s back: %s", APPROVAL_TAG, model_name, version, exc)
    if not changes.undo():
        return False  # a history entry stays while its move may stand
    return recorded.undo() and clean
