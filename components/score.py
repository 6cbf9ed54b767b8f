from kfp.dsl import HTML, Dataset, Metrics, Output

from components import project_component


@project_component
def score_batch(
    model_uri: str,
    input_uri: str,
    config: str,
    chunk_rows: int,
    output_uri: str,
    predictions: Output[Dataset],
    drift_report: Output[HTML],
    drift: Output[Metrics],
) -> str:
    """Scores a CSV or Parquet file with a registered model, chunk by chunk, and checks it for drift.

    Each chunk is checked against the model's signature (missing or mistyped columns fail with
    their names). Memory is bounded by `chunk_rows`, not by the input's size. The scored rows and
    their predictions are compared with the version's training profile at the config's
    `monitoring` thresholds; the report is also filed beside the version in MLflow.

    Args:
        model_uri: `models:/NAME@ALIAS` or `models:/NAME/VERSION` (tracking URI from MLFLOW_TRACKING_URI);
            an alias is resolved once, and the version scored with is recorded in the metadata.
        input_uri: Local path or s3:// URI of the rows to score.
        config: The data-set config as JSON (its `monitoring` section sets the drift thresholds).
        chunk_rows: Rows read and scored at a time.
        output_uri: Optional local path or s3:// URI to copy the predictions to ("" for none).
        predictions: Parquet with `row`, `prediction` and, for classifiers, `probability_<class>`.
        drift_report: The drift report: verdict, drifted columns with a plot each, every column's statistics.
        drift: Worst column PSI, drifted columns, prediction PSI.

    Returns:
        The drift verdict, "stable" or "drifted", for a pipeline to branch on (rows scored are in
        the predictions' metadata).
    """
    from pathlib import Path

    from lifecycle.dataset.config import parse_config
    from lifecycle.monitoring.checked_scoring import score_and_check_drift

    checked = score_and_check_drift(
        model_uri,
        input_uri,
        Path(predictions.path),
        parse_config(config).monitoring,
        chunk_rows=int(chunk_rows),
        output_uri=output_uri,
    )
    result, found = checked.scoring, checked.drift
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
    Path(drift_report.path).write_text(checked.report_html)
    drift_report.metadata.update(
        {
            "model_uri": result.model_uri,
            "mlflow_artifact": checked.report_artifact,
            "verdict": found.verdict,
            "summary": found.summary(),
            "drifted_columns": sorted(found.drifted_columns),
        }
    )
    worst = found.worst
    drift.log_metric("worst_psi", round(worst.psi, 4) if worst else 0.0)
    drift.log_metric("drifted_columns", found.drifted_count)
    drift.log_metric("prediction_psi", round(found.prediction.psi, 4))
    print(f"scored {result.rows} rows in {result.chunks} chunks with {result.model_uri} ({model_uri})")
    print(f"drift  {found.summary()}")
    return found.verdict
