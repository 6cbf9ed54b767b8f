"""The monitoring pipeline: score a file, check it for drift, and retrain when it drifted."""

from kfp import dsl

from components.retraining import retraining_data
from components.score import score_batch
from pipelines.settings import sized, with_mlflow
from pipelines.training import training


@dsl.pipeline(
    name="monitoring",
    description="Batch-scores a file with the champion, checks it for drift from the champion's training "
    "profile and, when it drifted, runs the training pipeline (champion only if better).",
)
def monitoring(
    config: str,
    input_uri: str,
    model_name: str,
    retrain_data_uri: str = "",
    promotion_margin: float = 0.0,
    git_commit: str = "",
    model_alias: str = "champion",
    chunk_rows: int = 50000,
):
    """Scores `input_uri` with `model_alias`, checks for drift, and retrains on "drifted".

    The retraining is the `training` pipeline itself, nested: the new version takes `champion`
    only by the usual rule (better on the same holdout), or waits for approval in manual mode.

    Args:
        config: The data-set config as JSON (its `monitoring` section sets the drift thresholds).
        input_uri: Local path or s3:// URI of the rows to score and check.
        model_name: MLflow registered model name.
        retrain_data_uri: Data to retrain on ("" for the config's data_uri, the source kept fresh).
        promotion_margin: How much better than the champion a new version must be to replace it.
        git_commit: Commit of the code that trains (recorded as a lineage tag).
        model_alias: Alias of the version to score with.
        chunk_rows: Rows read and scored at a time (bounds memory).
    """
    score = with_mlflow(
        sized(
            score_batch(
                model_uri=f"models:/{model_name}@{model_alias}",
                input_uri=input_uri,
                config=config,
                chunk_rows=chunk_rows,
                output_uri="",
            ),
            "compute",
        )
    )
    with dsl.If(score.outputs["Output"] == "drifted", name="drifted"):
        source = sized(retraining_data(config=config, retrain_data_uri=retrain_data_uri))
        training(
            config=config,
            data_uri=source.output,
            model_name=model_name,
            promotion_margin=promotion_margin,
            git_commit=git_commit,
        )
