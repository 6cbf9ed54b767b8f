"""The batch-scoring pipeline: a registered model scores a file of rows, chunk by chunk."""

from kfp import dsl
from kfp.dsl import Dataset

from components.score import score_batch
from pipelines.settings import sized, with_mlflow


@dsl.pipeline(
    name="batch-scoring",
    description="Scores a CSV or Parquet file with models:/NAME@champion in bounded memory, and checks it for drift.",
)
def batch_scoring(
    input_uri: str,
    model_name: str,
    config: str,
    model_alias: str = "champion",
    chunk_rows: int = 50000,
    output_uri: str = "",
) -> Dataset:
    """Scores `input_uri` with the model that holds `model_alias`, and checks the rows for drift
    from that version's training profile (the report is a task output and is filed in MLflow).

    Args:
        input_uri: Local path or s3:// URI of the rows to score (raw input columns).
        model_name: MLflow registered model name.
        config: The data-set config as JSON (its `monitoring` section sets the drift thresholds).
        model_alias: Alias of the version to use.
        chunk_rows: Rows read and scored at a time (bounds memory).
        output_uri: Optional local path or s3:// URI for a copy of the predictions.

    Returns:
        The predictions (Parquet), with rows and chunks in the metadata.
    """
    # Never cached: the alias may point at a new version with the same inputs.
    score = with_mlflow(
        sized(
            score_batch(
                model_uri=f"models:/{model_name}@{model_alias}",
                input_uri=input_uri,
                config=config,
                chunk_rows=chunk_rows,
                output_uri=output_uri,
            ),
            "compute",
        )
    )
    return score.outputs["predictions"]
