"""The training pipeline: raw file to a registered, possibly promoted and deployed, model, with a
notification of how the run ended."""

from kfp import dsl

from components.deploy import deploy_model
from components.evaluate import evaluate_model
from components.featurize import fit_featurizer
from components.ingest import ingest_dataset
from components.notify import notify_outcome
from components.process import process_dataset
from components.register import register_model
from components.split import split_dataset
from components.train import cross_validate, plan_candidates, train_best_model
from components.validate import validate_dataset
from pipelines.settings import (
    sized,
    with_deployer_identity,
    with_mlflow,
    with_notify_webhook,
    with_s3_credentials,
)


@dsl.pipeline(
    name="training",
    description="Ingest, validate, process, split, featurize, cross-validate candidates in parallel, "
    "train the best, evaluate, register in MLflow (champion only if better), optionally deploy the "
    "champion to KServe; a notification reports how the run ended.",
)
def training(
    config: str,
    data_uri: str,
    model_name: str,
    promotion_margin: float = 0.0,
    git_commit: str = "",
    deploy: bool = False,
    serving_namespace: str = "models",
    deploy_timeout_seconds: int = 900,
):
    """Trains and registers a model for one data set, and optionally serves the champion.

    Every step runs inside an exit handler, so the notification goes out after success and
    failure alike. KFP does not let a pipeline return outputs from inside an exit handler: the
    register step's summary is that task's output (kfp.local: `register-model/executor_output.json`
    in the run's pipeline root).

    Args:
        config: The data-set config as JSON (a configs/*.yaml file, see lifecycle.dataset.config).
        data_uri: Local path or s3:// URI of the raw CSV or Parquet file.
        model_name: MLflow registered model name (also the InferenceService name when deployed).
        promotion_margin: How much better than the champion a new version must be to replace it.
        git_commit: Commit of the code that trains (recorded as a lineage tag).
        deploy: Serve the champion as a KServe InferenceService after registering (cluster only).
        serving_namespace: Namespace of the InferenceService.
        deploy_timeout_seconds: How long the deploy step waits for the service to become Ready.
    """
    notify = with_notify_webhook(
        with_mlflow(
            sized(
                notify_outcome(
                    model_name=model_name,
                    pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                    pipeline_job_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                    pipeline_root=dsl.PIPELINE_ROOT_PLACEHOLDER,
                )
            )
        )
    )
    with dsl.ExitHandler(notify):
        ingest = with_s3_credentials(sized(ingest_dataset(data_uri=data_uri, config=config)))
        validate = sized(validate_dataset(dataset=ingest.outputs["dataset"], config=config))
        process = sized(process_dataset(dataset=ingest.outputs["dataset"], config=config))
        process.after(validate)
        split = sized(split_dataset(processed=process.outputs["processed"], config=config))
        featurize = sized(fit_featurizer(train=split.outputs["train"], config=config))
        plan = sized(plan_candidates(config=config))
        plan.after(validate)

        with dsl.ParallelFor(items=plan.output, name="candidates") as candidate:
            scored = sized(
                cross_validate(
                    train=split.outputs["train"],
                    featurizer=featurize.outputs["featurizer"],
                    config=config,
                    candidate=candidate,
                ),
                "compute",
            )

        best = sized(
            train_best_model(
                train=split.outputs["train"],
                featurizer=featurize.outputs["featurizer"],
                config=config,
                cv_results=dsl.Collected(scored.output),
            ),
            "compute",
        )
        evaluate = sized(
            evaluate_model(model=best.outputs["model"], test=split.outputs["test"], config=config), "compute"
        )
        register = with_mlflow(
            sized(
                register_model(
                    model=best.outputs["model"],
                    dataset=ingest.outputs["dataset"],
                    train=split.outputs["train"],
                    test=split.outputs["test"],
                    config=config,
                    holdout_metrics=evaluate.outputs["holdout_metrics"],
                    evaluation_report=evaluate.outputs["report"],
                    validation_report=validate.outputs["report"],
                    model_name=model_name,
                    promotion_margin=promotion_margin,
                    git_commit=git_commit,
                    pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                    cv_results=dsl.Collected(scored.output),
                )
            )
        )
        # The champion, not necessarily this run's version: a run that did not beat it redeploys
        # the same version, which changes nothing.
        with dsl.If(deploy == True, name="deploy-requested"):  # noqa: E712 (a KFP condition, not a Python test)
            with_deployer_identity(
                with_mlflow(
                    sized(
                        deploy_model(
                            model_name=model_name,
                            registration=register.outputs["Output"],
                            namespace=serving_namespace,
                            timeout_seconds=deploy_timeout_seconds,
                        )
                    )
                )
            )
