from components import project_component


@project_component
def retraining_data(config: str, retrain_data_uri: str) -> str:
    """The data a retraining run trains on: `retrain_data_uri` when given, else the config's `data_uri`
    (in production, the source the config names is the one kept fresh).

    Args:
        config: The data-set config as JSON.
        retrain_data_uri: Local path or s3:// URI to train on instead ("" for the config's).

    Returns:
        The URI to train on.
    """
    from lifecycle.dataset.config import parse_config

    chosen = retrain_data_uri.strip() or parse_config(config).data_uri
    print(f"retraining on {chosen}")
    return chosen
