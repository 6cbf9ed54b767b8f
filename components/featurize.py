from kfp.dsl import Dataset, Input, Model, Output

from components import project_component


@project_component
def fit_featurizer(train: Input[Dataset], config: str, featurizer: Output[Model]):
    """Fits the feature transformer (derived columns, imputation, scaling, one-hot) on the training split.

    Args:
        train: The training split.
        config: The data-set config (`columns` and `features` sections).
        featurizer: The fitted sklearn transformer (skops; its sha256 in the metadata).
    """
    import pandas as pd

    from lifecycle.dataset.config import parse_config
    from lifecycle.modelling.features import build_featurizer, features_and_target
    from lifecycle.modelling.serialization import save_model_file

    cfg = parse_config(config)
    X, _ = features_and_target(pd.read_parquet(train.path), cfg)
    fitted = build_featurizer(cfg).fit(X)
    featurizer.metadata["sha256"] = save_model_file(fitted, featurizer.path)
    featurizer.metadata.update({"input_columns": X.shape[1], "output_columns": len(fitted.get_feature_names_out())})
