"""The MLflow model registry: registering a version, the promotion policy and its lock, and the one
loader for a registered model."""

from lifecycle.registry.errors import RegistrationError
from lifecycle.registry.lock import PromotionLock
from lifecycle.registry.policy import CHALLENGER, CHAMPION, Promotion, decide_promotion
from lifecycle.registry.registered_model import TrustedModel, load_registered
from lifecycle.registry.registration import Registration, register_model

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "Promotion",
    "PromotionLock",
    "RegistrationError",
    "Registration",
    "TrustedModel",
    "decide_promotion",
    "load_registered",
    "register_model",
]
