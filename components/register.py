from kfp.dsl import HTML, Dataset, Input, Markdown, Model, Output

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
    cv_results: list[str],
    model_card: Output[HTML],
) -> dict:
    """Registers the pipeline model in MLflow as `challenger`, and as `champion` if it is better.

    The current champion is scored on this run's holdout; the new version takes `champion` only
    if it beats it on the config's metric by more than `promotion_margin`. Tracking URI from
    MLFLOW_TRACKING_URI. The version carries its reference profile (reports/profile.json, its
    sha256 a version tag) for the drift check of every later scoring run, and its MLmodel the
    numeric columns' training ranges (`metadata.input_ranges`) for the predictor's out-of-range
    counters. Then the version's model card (lifecycle.modelling.model_card) goes to the
    `model_card` artifact and to `model_card.html` in the version's run.

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
        cv_results: Every candidate's cross-validation result (collected from the ParallelFor), for the card.
        model_card: The version's model card (HTML), also logged as `model_card.html` in its run.

    Returns:
        Name, version, aliases, promotion decision and metrics of the registered version.
    """
    import hashlib
    import json
    import tempfile
    from pathlib import Path

    import pandas as pd
    from mlflow import MlflowClient

    from lifecycle.dataset.config import config_as_json, parse_config
    from lifecycle.modelling.model_card import MODEL_CARD_FILE, gather_facts, model_card_html
    from lifecycle.modelling.serialization import load_artifact_model
    from lifecycle.monitoring.reference import (
        PROFILE_FILE,
        PROFILE_SHA256_TAG,
        profile_ranges,
        profile_sha256,
        reference_profile_text,
    )
    from lifecycle.registry.registration import register_model as register
    from lifecycle.urls import mask_credentials

    cfg = parse_config(config)
    fitted = load_artifact_model(model.path, model.metadata)
    train_frame, test_frame = pd.read_parquet(train.path), pd.read_parquet(test.path)
    config_digest = hashlib.sha256(config_as_json(cfg).encode()).hexdigest()
    profile = reference_profile_text(fitted, train_frame, test_frame, cfg)
    profile_path = Path(tempfile.mkdtemp(prefix="profile-")) / PROFILE_FILE
    profile_path.write_text(profile)
    registration = register(
        fitted,
        train_frame,
        test_frame,
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
            PROFILE_SHA256_TAG: profile_sha256(profile),
        },
        artifacts={
            "evaluation.html": Path(evaluation_report.path),
            "validation.md": Path(validation_report.path),
            PROFILE_FILE: profile_path,
        },
        params={
            "candidate": model.metadata.get("candidate", ""),
            "dataset": cfg.name,
            "promotion_margin": promotion_margin,
        },
        input_ranges=profile_ranges(profile),
    )
    print(json.dumps(registration.to_dict(), indent=2))

    page = model_card_html(
        gather_facts(
            cfg,
            fitted,
            train_frame,
            test_frame,
            registration.to_dict(),
            [json.loads(r) for r in cv_results],
            chosen=model.metadata.get("candidate", ""),
            data=dict(dataset.metadata),
            lineage={"git_commit": git_commit, "pipeline_run_id": pipeline_run_id},
            reference_profile=json.loads(profile),
        )
    )
    Path(model_card.path).write_text(page)
    # Beside the model, in the version's run. The version is registered and its aliases have moved
    # by now, so a card that cannot be uploaded is reported, not raised: failing the step would
    # report a registration that happened as one that did not (the KFP artifact has the card).
    try:
        with tempfile.TemporaryDirectory() as scratch:
            card = Path(scratch) / MODEL_CARD_FILE
            card.write_text(page)
            MlflowClient().log_artifact(registration.run_id, str(card))
        print(f"model card: runs:/{registration.run_id}/{MODEL_CARD_FILE}")
    except Exception as exc:
        print(f"WARNING: model card not logged to MLflow run {registration.run_id}: {mask_credentials(str(exc))}")
    return registration.to_dict()
