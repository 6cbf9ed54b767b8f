from kfp.dsl import Dataset, Output

from components import project_component


@project_component
def ingest_dataset(data_uri: str, config: str, dataset: Output[Dataset]):
    """Reads a CSV or Parquet file from a local path or s3:// URI into a Parquet data set.

    Args:
        data_uri: Local path or `s3://bucket/key` of the raw file (S3 endpoint and credentials
            from the environment).
        config: The data-set config (see configs/); checked here so a bad config fails first.
        dataset: The raw table as Parquet, with rows, columns and a sha256 of the source bytes.
    """
    from lifecycle.dataset.config import parse_config
    from lifecycle.dataset.ingest import ingest_table, text_columns_of

    table = ingest_table(data_uri, text_columns_of(parse_config(config)))
    table.frame.to_parquet(dataset.path, index=False)
    dataset.metadata.update(table.summary)
