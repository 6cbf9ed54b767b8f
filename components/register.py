from kfp.dsl import HTML, Dataset, Input, Markdown, Model

from components import project_component


@project_component
def register_model(
    model: Input[Model],
    dataset: Input[Dataset],
    train: Input[Dataset],
    test: Input[Dataset],
    config: str,
    holdout_metrics: dict,
    evaluation_report: Input[HTML],
    validation_report: Input[Markdown],
    model_name: str,
    promotion_margin: float,
    git_commit: str,
    pipeline_run_id: str,
) -> dict:
    """Registers the pipeline model in MLflow as `challenger`, and as `champion` if it is better.

    The current champion is scored on this run's holdout; the new version takes `champion` only
    if it beats it on the config's metric by more than `promotion_margin`. Tracking URI from
    MLFLOW_TRACKING_URI.

    Args:
        model: The fitted pipeline (featurizer + estimator).
        dataset: The raw table (its sha256 becomes a lineage tag).
        train: The training split (signature and input example).
        test: The holdout split (champion comparison).
        config: The data-set config.
        holdout_metrics: The evaluate step's metrics.
        evaluation_report: Logged with the run.
        validation_report: Logged with the run.
        model_name: Registered model name.
        promotion_margin: How much better than the champion a challenger must be.
        git_commit: Source commit of the code that trained the model (lineage tag).
        pipeline_run_id: KFP run id (lineage tag).

    Returns:
        Name, version, aliases, promotion decision and metrics of the registered version.
    """
    import hashlib
    import json
    from pathlib import Path

    import pandas as pd

    from lifecycle.dataset.config import config_as_json, parse_config
    from lifecycle.modelling.serialization import load_artifact_model
    from lifecycle.registry.registration import register_model as register

    cfg = parse_config(config)
    fitted = load_artifact_model(model.path, model.metadata)
    config_digest = hashlib.sha256(config_as_json(cfg).encode()).hexdigest()
    registration = register(
        fitted,
        pd.read_parquet(train.path),
        pd.read_parquet(test.path),
        cfg,
        {k: float(v) for k, v in holdout_metrics.items()},
        model_name=model_name,
        margin=promotion_margin,
        lineage={
            "data_sha256": dataset.metadata.get("sha256", ""),
            "data_uri": dataset.metadata.get("source_uri", ""),
            "config_sha256": config_digest,
            "git_commit": git_commit,
            "pipeline_run_id": pipeline_run_id,
        },
        artifacts={"evaluation.html": Path(evaluation_report.path), "validation.md": Path(validation_report.path)},
        params={
            "candidate": model.metadata.get("candidate", ""),
            "dataset": cfg.name,
            "promotion_margin": promotion_margin,
        },
    )
    print(json.dumps(registration.to_dict(), indent=2))
    return registration.to_dict()
