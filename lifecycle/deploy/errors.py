"""What a failed deployment raises."""


class DeploymentError(RuntimeError):
    """The model could not be deployed, did not become ready, or did not answer correctly."""


class SmokeTestError(DeploymentError):
    """The predictor did not answer the smoke request with one prediction per row."""

    def __init__(self, message: str, model_version: str | None = None):
        super().__init__(message)
        self.model_version = model_version  # of the predictor that refused, when its answer says
