"""The training pipeline: raw file to a registered, possibly promoted, model."""

from kfp import dsl

from components.evaluate import evaluate_model
from components.featurize import fit_featurizer
from components.ingest import ingest_dataset
from components.process import process_dataset
from components.register import register_model
from components.split import split_dataset
from components.train import cross_validate, plan_candidates, train_best_model
from components.validate import validate_dataset
from pipelines.settings import sized, with_mlflow, with_s3_credentials


@dsl.pipeline(
    name="training",
    description="Ingest, validate, process, split, featurize, cross-validate candidates in parallel, "
    "train the best, evaluate, and register in MLflow (champion only if better).",
)
def training(
    config: str,
    data_uri: str,
    model_name: str,
    promotion_margin: float = 0.0,
    git_commit: str = "",
) -> dict:
    """Trains and registers a model for one data set.

    Args:
        config: The data-set config as JSON (a configs/*.yaml file, see lifecycle.config).
        data_uri: Local path or s3:// URI of the raw CSV or Parquet file.
        model_name: MLflow registered model name.
        promotion_margin: How much better than the champion a new version must be to replace it.
        git_commit: Commit of the code that trains (recorded as a lineage tag).

    Returns:
        The register step's summary: name, version, aliases, promotion decision, metrics.
    """
    ingest = with_s3_credentials(sized(ingest_dataset(data_uri=data_uri, config=config)))
    validate = sized(validate_dataset(dataset=ingest.outputs["dataset"], config=config))
    process = sized(process_dataset(dataset=ingest.outputs["dataset"], config=config))
    process.after(validate)
    split = sized(split_dataset(processed=process.outputs["processed"], config=config))
    featurize = sized(fit_featurizer(train=split.outputs["train"], config=config))
    plan = sized(plan_candidates(config=config))
    plan.after(validate)

    with dsl.ParallelFor(items=plan.output, name="candidates") as candidate:
        scored = sized(
            cross_validate(
                train=split.outputs["train"],
                featurizer=featurize.outputs["featurizer"],
                config=config,
                candidate=candidate,
            ),
            "compute",
        )

    best = sized(
        train_best_model(
            train=split.outputs["train"],
            featurizer=featurize.outputs["featurizer"],
            config=config,
            cv_results=dsl.Collected(scored.output),
        ),
        "compute",
    )
    evaluate = sized(evaluate_model(model=best.outputs["model"], test=split.outputs["test"], config=config), "compute")
    register = with_mlflow(
        sized(
            register_model(
                model=best.outputs["model"],
                dataset=ingest.outputs["dataset"],
                train=split.outputs["train"],
                test=split.outputs["test"],
                config=config,
                holdout_metrics=evaluate.outputs["holdout_metrics"],
                evaluation_report=evaluate.outputs["report"],
                validation_report=validate.outputs["report"],
                model_name=model_name,
                promotion_margin=promotion_margin,
                git_commit=git_commit,
                pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            )
        )
    )
    return register.output
