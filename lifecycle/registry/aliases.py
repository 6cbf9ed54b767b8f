"""The aliases one registration moves, and how they are put back."""

from __future__ import annotations

import logging

from lifecycle.registry.errors import RegistrationError
from lifecycle.registry.policy import alias_version
from lifecycle.urls import mask_credentials

log = logging.getLogger(__name__)


class AliasChanges:
    """The aliases one registration moves to its version, and where each was before.

    An alias moves only after its current version was read, so a rollback restores exactly what
    it found: it deletes only an alias this registration created, and leaves an alias that no
    longer points at this version (moved by someone else since) alone.
    """

    def __init__(self, client, model_name: str, version: str):
        self.client, self.model_name, self.version = client, model_name, version
        self.found: dict[str, str | None] = {}
        self.moved: list[str] = []

    def read(self, alias: str) -> str | None:
        self.found[alias] = alias_version(self.client, self.model_name, alias)
        return self.found[alias]

    def move(self, alias: str) -> None:
        if alias not in self.found:
            raise RegistrationError(
                f"alias {alias} of {self.model_name} would move before its current version was read"
            )
        self.moved.append(alias)  # before the call: a call that fails may still have been applied
        self.client.set_registered_model_alias(self.model_name, alias, self.version)

    def undo(self) -> bool:
        """Puts every moved alias back; True when none can still point at this version."""
        clean = True
        for alias in reversed(self.moved[:]):
            earlier = self.found[alias]
            try:
                if alias_version(self.client, self.model_name, alias) == self.version:
                    if earlier is None:  # created by this registration
                        self.client.delete_registered_model_alias(self.model_name, alias)
                    else:
                        self.client.set_registered_model_alias(self.model_name, alias, earlier)
                self.moved.remove(alias)
            except Exception as exc:
                clean = False
                log.error(
                    "could not put alias %s of %s back on %s: %s",
                    alias,
                    self.model_name,
                    f"v{earlier}" if earlier else "nothing",
                    mask_credentials(str(exc)),
                )
        return clean
