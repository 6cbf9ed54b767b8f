from kfp.dsl import Dataset, Input, Output

from components import project_component


@project_component
def process_dataset(dataset: Input[Dataset], config: str, processed: Output[Dataset]):
    """Cleans the validated table as configured: dtypes, level-meaning blanks, clipping, duplicates.

    Args:
        dataset: The validated raw table.
        config: The data-set config (`processing` section).
        processed: The cleaned table as Parquet.
    """
    import pandas as pd

    from lifecycle.dataset.config import parse_config
    from lifecycle.dataset.process import process_frame

    frame = process_frame(pd.read_parquet(dataset.path), parse_config(config))
    frame.to_parquet(processed.path, index=False)
    processed.metadata.update({"rows": len(frame), "columns": frame.shape[1]})
