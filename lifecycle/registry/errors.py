"""What a failed registration raises."""


class RegistrationError(RuntimeError):
    """The model could not be registered; the registry is left as it was."""
