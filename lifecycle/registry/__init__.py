"""The MLflow model registry: registering a version, the promotion policy and its lock, approval
and rollback by a person, the champion's history, and the one loader for a registered model."""

from lifecycle.registry.approval import PromotionError, approve, rollback
from lifecycle.registry.errors import RegistrationError
from lifecycle.registry.history import HistoryError, history
from lifecycle.registry.lock import PromotionLock
from lifecycle.registry.policy import CHALLENGER, CHAMPION, Promotion, decide_promotion
from lifecycle.registry.registered_model import TrustedModel, load_registered
from lifecycle.registry.registration import Registration, register_model

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "HistoryError",
    "Promotion",
    "PromotionError",
    "PromotionLock",
    "RegistrationError",
    "Registration",
    "TrustedModel",
    "approve",
    "decide_promotion",
    "history",
    "load_registered",
    "register_model",
    "rollback",
]
