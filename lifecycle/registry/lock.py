"""One promotion decision at a time per registered model, across processes and machines.

The registry has no compare-and-set for aliases: two registrations moving `champion` at once
could both compare against the same champion, and the worse one could move it last. Creating a
registered model is atomic (names are unique), so a registered model named
`<model_name>.promotion-lock` is the lock. It carries its holder's token in the tag `owner`.

While held, a heartbeat thread updates the lock's description every LOCK_HEARTBEAT_SECONDS; the
registry stamps each update (`last_updated_timestamp`, by its own clock). A lock whose last
heartbeat is older than LOCK_STALE_SECONDS was left by a holder that died, and is broken; a live
holder is never stale, however long it works. A holder checks that the lock still carries its
token before each alias move and before release; if the token is gone, it lost the lock
(PromotionLockLost) and must move nothing more.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager

log = logging.getLogger(__name__)

# A lock whose last heartbeat is older than this was left by a holder that died.
LOCK_STALE_SECONDS = 120.0
# How often a holder refreshes its lock: several beats fit in the stale limit, so a few failed
# refreshes (a registry hiccup) do not make a live holder look dead.
LOCK_HEARTBEAT_SECONDS = 10.0
# How long a registration waits for the lock. Longer than the stale limit plus one poll, so a
# lock left by a dead holder is always broken by a waiter rather than failing it.
LOCK_WAIT_SECONDS = 300.0
OWNER_TAG = "owner"


class PromotionLockError(RuntimeError):
    """The lock could not be taken, or was lost while held."""


class PromotionLockLost(PromotionLockError):
    """The lock no longer carries this holder's token: another holder may be inside."""


def lock_name(model_name: str) -> str:
    return f"{model_name}.promotion-lock"


def _not_found(exc) -> bool:
    return getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


def _already_exists(exc) -> bool:
    return getattr(exc, "error_code", None) == "RESOURCE_ALREADY_EXISTS"


class PromotionLock:
    """The promotion lock of `model_name`: acquire(), check() before each move, release().

    Registry errors other than "exists" / "does not exist" propagate: a holder that cannot tell
    whether it holds the lock must not act as if it did.
    """

    def __init__(self, client, model_name: str, wait: float | None = None):
        self.client = client
        self.model_name = model_name
        self.name = lock_name(model_name)
        self.wait = LOCK_WAIT_SECONDS if wait is None else wait
        self.token = uuid.uuid4().hex
        self.holder = f"held by {socket.gethostname()} pid {os.getpid()} token {self.token}"
        self.held = False
        self._maybe_created = False  # a create that failed may still have been applied
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def acquire(self) -> None:
        deadline = time.monotonic() + self.wait
        delay = 0.2
        while not self._try_create():
            if break_stale_lock(self.client, self.name):
                continue
            if time.monotonic() > deadline:
                raise PromotionLockError(
                    f"another registration of {self.model_name} held the promotion lock {self.name!r} "
                    f"for over {self.wait:.0f} s"
                )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        self.held = True
        self._lost.clear()
        self._stop.clear()
        self._heartbeat = threading.Thread(target=self._beat, name=f"heartbeat {self.name}", daemon=True)
        self._heartbeat.start()

    def _try_create(self) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(self.name, tags={OWNER_TAG: self.token}, description=self.holder)
            return True
        except MlflowException as exc:
            if not _already_exists(exc):
                self._maybe_created = True
                raise
        except Exception:
            self._maybe_created = True
            raise
        # A create that timed out may have been applied and then retried: the lock may be ours.
        return self._owner() == self.token

    def _owner(self) -> str | None:
        """The token on the lock now; None when there is no lock."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_registered_model(self.name).tags.get(OWNER_TAG)
        except MlflowException as exc:
            if _not_found(exc):
                return None
            raise

    def _beat(self) -> None:
        from mlflow.exceptions import MlflowException

        beats = 0
        while not self._stop.wait(LOCK_HEARTBEAT_SECONDS):
            beats += 1
            try:
                self.client.update_registered_model(self.name, description=f"{self.holder}; heartbeat {beats}")
            except MlflowException as exc:
                if _not_found(exc):  # broken: another holder may be inside
                    self._lost.set()
                    return
                log.warning("could not refresh promotion lock %s: %s", self.name, exc)
            except Exception as exc:  # the next beat tries again; the stale limit allows several misses
                log.warning("could not refresh promotion lock %s: %s", self.name, exc)

    def check(self) -> None:
        """Raises PromotionLockLost unless the lock still carries this holder's token."""
        if not self.held:
            raise PromotionLockLost(f"promotion lock {self.name!r} is not held by this registration")
        owner = None if self._lost.is_set() else self._owner()
        if owner != self.token:
            self.held = False
            self._stop_heartbeat()
            raise PromotionLockLost(
                f"lost the promotion lock {self.name!r}: it was broken while this registration held it "
                f"({'now held by another' if owner else 'no lock'})"
            )

    def release(self) -> None:
        """Deletes the lock if it still carries this holder's token; PromotionLockLost otherwise."""
        self.check()
        self._stop_heartbeat()
        self.client.delete_registered_model(self.name)
        self.held = False  # only now: a failed delete leaves the lock ours, for release_quietly to retry

    def release_quietly(self) -> None:
        """For failure paths: releases the lock if it is ours; one that cannot be deleted goes stale."""
        try:
            if self.held:
                self.release()
            elif self._maybe_created and self._owner() == self.token:  # taken by a create that seemed to fail
                self.client.delete_registered_model(self.name)
        except Exception as exc:
            log.error("could not release promotion lock %s (it goes stale and is broken later): %s", self.name, exc)
        finally:
            self.held = self._maybe_created = False
            self._stop_heartbeat()

    def _stop_heartbeat(self) -> None:
        self._stop.set()
        if self._heartbeat is not None and self._heartbeat is not threading.current_thread():
            # Not waiting on a beat stuck in a slow request: a late beat refreshes at most a lock
            # that is live anyway, or finds none.
            self._heartbeat.join(timeout=1.0)
        self._heartbeat = None


@contextmanager
def promotion_lock(client, model_name: str, wait: float | None = None):
    """The lock as a context: released on exit, or PromotionLockLost if it was lost meanwhile."""
    lock = PromotionLock(client, model_name, wait)
    lock.acquire()
    try:
        yield lock
    except BaseException:
        lock.release_quietly()
        raise
    lock.release()


def break_stale_lock(client, lock: str) -> bool:
    """Deletes `lock` if its last heartbeat is older than LOCK_STALE_SECONDS by the registry's clock.

    True if it did. Waiters that find the same stale lock must not each delete "the lock" by
    name: the slower one would delete the lock the faster one has just taken. So a breaker first
    claims that lock by creating `<lock>.break-<its creation time>` (atomic: one claim per lock),
    checks that the lock is still the one it claimed and has not beaten since, deletes it, then
    its claim. The claim's creation time, stamped by the registry, is the "now" the lock's
    silence is measured against: a waiter whose clock runs ahead does not break a live lock. A
    claim left by a breaker that died is removed once it is stale.
    """
    from mlflow.exceptions import MlflowException

    try:
        held = client.get_registered_model(lock)
    except MlflowException as exc:
        if _not_found(exc):  # released meanwhile
            return False
        raise
    if time.time() - held.last_updated_timestamp / 1000 <= LOCK_STALE_SECONDS:  # by this clock; confirmed below
        return False
    claim = f"{lock}.break-{held.creation_timestamp}"
    try:
        claimed_at = client.create_registered_model(
            claim, description=f"breaking {lock}: {held.description}"
        ).creation_timestamp
    except MlflowException as exc:
        if not _already_exists(exc):
            raise
        _remove_stale_claim(client, claim)
        return False
    try:
        current = client.get_registered_model(lock)
        silent = (claimed_at - held.last_updated_timestamp) / 1000
        same = (current.creation_timestamp, current.last_updated_timestamp) == (
            held.creation_timestamp,
            held.last_updated_timestamp,
        )
        if not same or silent <= LOCK_STALE_SECONDS:
            return False
        log.warning("breaking promotion lock %s: %s, silent for %.0f s", lock, held.description, silent)
        client.delete_registered_model(lock)
        return True
    except MlflowException as exc:
        if _not_found(exc):  # released meanwhile
            return False
        raise
    finally:
        try:
            client.delete_registered_model(claim)
        except Exception as exc:  # it goes stale and is removed by a later waiter
            log.error("could not remove promotion lock claim %s: %s", claim, exc)


def _remove_stale_claim(client, claim: str) -> None:
    """A claim lives for the few requests of one break; an old one was left by a breaker that died."""
    from mlflow.exceptions import MlflowException

    try:
        if time.time() - client.get_registered_model(claim).creation_timestamp / 1000 > LOCK_STALE_SECONDS:
            log.warning("removing promotion lock claim %s left by a breaker that died", claim)
            client.delete_registered_model(claim)
    except MlflowException as exc:
        if not _not_found(exc):  # removed meanwhile
            raise
