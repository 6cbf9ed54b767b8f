from kfp.dsl import Dataset, Input, Markdown, Output

from components import project_component


@project_component
def validate_dataset(dataset: Input[Dataset], config: str, report: Output[Markdown]):
    """Checks the raw table against the config and fails on any violated rule.

    Args:
        dataset: The raw table from ingest.
        config: The data-set config: columns, types, ranges, categories, null and duplicate limits.
        report: A Markdown report of every violation and soft finding (rendered by the KFP UI).
    """
    import pandas as pd

    from lifecycle.dataset.config import parse_config
    from lifecycle.dataset.validate import validate_frame

    source = dataset.metadata.get("source_uri", dataset.uri)
    result = validate_frame(pd.read_parquet(dataset.path), parse_config(config), source)
    with open(report.path, "w") as handle:
        handle.write(result.to_markdown())
    report.metadata.update({"violations": len(result.violations), "warnings": len(result.warnings)})
    result.raise_if_failed()
