from kfp.dsl import Dataset, Output

from components import project_component


@project_component
def score_batch(model_uri: str, input_uri: str, chunk_rows: int, output_uri: str, predictions: Output[Dataset]) -> int:
    """Scores a CSV or Parquet file with a registered model, chunk by chunk.

    Each chunk is checked against the model's signature (missing or mistyped columns fail with
    their names). Memory is bounded by `chunk_rows`, not by the input's size.

    Args:
        model_uri: `models:/NAME@ALIAS` or `models:/NAME/VERSION` (tracking URI from MLFLOW_TRACKING_URI);
            an alias is resolved once, and the version scored with is recorded in the metadata.
        input_uri: Local path or s3:// URI of the rows to score.
        chunk_rows: Rows read and scored at a time.
        output_uri: Optional local path or s3:// URI to copy the predictions to ("" for none).
        predictions: Parquet with `row`, `prediction` and, for classifiers, `probability_<class>`.

    Returns:
        The number of rows scored.
    """
    from pathlib import Path

    from lifecycle.scoring.batch import score_file

    result = score_file(model_uri, input_uri, Path(predictions.path), chunk_rows=int(chunk_rows), output_uri=output_uri)
    predictions.metadata.update(
        {
            "rows": result.rows,
            "chunks": result.chunks,
            "requested_model_uri": model_uri,
            "model_uri": result.model_uri,
            "model_sha256": result.model_sha256,
            "copied_to": output_uri,
        }
    )
    print(f"scored {result.rows} rows in {result.chunks} chunks with {result.model_uri} ({model_uri})")
    return result.rows
