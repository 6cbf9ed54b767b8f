from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components import project_component


@project_component
def plan_candidates(config: str) -> list[str]:
    """Expands the config's search space into candidates, one ParallelFor iteration each.

    Args:
        config: The data-set config (`training.search_space`).

    Returns:
        The candidates as JSON texts (estimator family, parameters, id).
    """
    from lifecycle.dataset.config import parse_config
    from lifecycle.modelling.estimators import candidate_to_json, expand_search_space

    return [candidate_to_json(c) for c in expand_search_space(parse_config(config))]


@project_component
def cross_validate(train: Input[Dataset], featurizer: Input[Model], config: str, candidate: str) -> str:
    """Scores one candidate by k-fold cross-validation on the training split.

    Args:
        train: The training split.
        featurizer: The feature transformer; refitted inside every fold.
        config: The data-set config (`training.cv_folds`, `registry.metric`).
        candidate: One candidate as JSON, from plan_candidates.

    Returns:
        JSON with the candidate and its mean and spread of the metric over the folds.
    """
    import json

    import pandas as pd

    from lifecycle.dataset.config import parse_config
    from lifecycle.modelling.serialization import load_artifact_model
    from lifecycle.modelling.training import cross_validate_candidate

    result = cross_validate_candidate(
        pd.read_parquet(train.path),
        load_artifact_model(featurizer.path, featurizer.metadata),
        json.loads(candidate),
        parse_config(config),
    )
    print(f"{result['candidate']['id']}: {result['metric']} {result['mean']:.5f} +/- {result['std']:.5f}")
    return json.dumps(result, sort_keys=True)


@project_component
def train_best_model(
    train: Input[Dataset],
    featurizer: Input[Model],
    config: str,
    cv_results: list[str],
    model: Output[Model],
    cv_metrics: Output[Metrics],
) -> str:
    """Picks the best candidate and fits ONE pipeline (featurizer + estimator) on the training split.

    Args:
        train: The training split.
        featurizer: The feature transformer.
        config: The data-set config.
        cv_results: Every candidate's cross-validation result (collected from the ParallelFor).
        model: The fitted sklearn Pipeline (skops; its sha256 in the metadata): raw columns in, predictions out.
        cv_metrics: The winner's cross-validation score and every candidate's, for the UI.

    Returns:
        The chosen candidate's result as JSON.
    """
    import json

    import pandas as pd

    from lifecycle.dataset.config import parse_config
    from lifecycle.modelling.serialization import load_artifact_model, save_model_file
    from lifecycle.modelling.training import fit_model, select_best

    cfg = parse_config(config)
    results = [json.loads(r) for r in cv_results]
    best = select_best(results, cfg)
    fitted = fit_model(
        pd.read_parquet(train.path), load_artifact_model(featurizer.path, featurizer.metadata), best["candidate"], cfg
    )
    model.metadata["sha256"] = save_model_file(fitted, model.path)
    model.metadata.update({"candidate": best["candidate"]["id"], best["metric"]: best["mean"]})
    cv_metrics.log_metric(best["metric"], best["mean"])
    cv_metrics.log_metric(f"{best['metric']}_std", best["std"])
    for result in sorted(results, key=lambda r: r["candidate"]["id"]):
        if result.get("error") is None:  # a candidate that could not be scored has no number to show
            cv_metrics.log_metric(f"candidate_{result['candidate']['id']}", result["mean"])
    return json.dumps(best, sort_keys=True)
