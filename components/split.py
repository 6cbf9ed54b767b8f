from kfp.dsl import Dataset, Input, Output

from components import project_component


@project_component
def split_dataset(processed: Input[Dataset], config: str, train: Output[Dataset], test: Output[Dataset]):
    """Seeded train/test split, stratified on the label for classification.

    Args:
        processed: The cleaned table.
        config: The data-set config (`split` section: test size and seed).
        train: Rows to fit and cross-validate on.
        test: Holdout rows, used only for evaluation and champion comparison.
    """
    import pandas as pd

    from lifecycle.dataset.config import parse_config
    from lifecycle.dataset.process import split_frame

    train_frame, test_frame = split_frame(pd.read_parquet(processed.path), parse_config(config))
    train_frame.to_parquet(train.path, index=False)
    test_frame.to_parquet(test.path, index=False)
    train.metadata["rows"] = len(train_frame)
    test.metadata["rows"] = len(test_frame)
