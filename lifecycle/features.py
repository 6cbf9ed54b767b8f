"""`lifecycle.features.PrepareInputs`, the class path recorded in models registered before the
modelling package existed: skops finds a stored class by that path, so it must keep resolving."""

from lifecycle.modelling.features import PrepareInputs

__all__ = ["PrepareInputs"]
