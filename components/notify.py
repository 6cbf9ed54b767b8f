from kfp import dsl

from components import project_component


@project_component
def notify_outcome(
    status: dsl.PipelineTaskFinalStatus,
    model_name: str,
    pipeline_run_id: str,
    pipeline_job_name: str,
    pipeline_root: str,
) -> None:
    """Reports how the run ended to the webhook in NOTIFY_WEBHOOK_URL (Slack-compatible JSON), or only logs it.

    Runs as the pipeline's exit handler, after success or failure. On success it reads the
    version this run registered back from MLflow (tag pipeline_run_id) with its aliases and
    metrics; on failure it names the failed step when it can be known. It never fails: an
    unreachable webhook or registry is logged.

    Args:
        status: Final state of the guarded steps (filled in by KFP).
        model_name: Registered model name the run trains.
        pipeline_run_id: KFP run id (the tag register puts on the version).
        pipeline_job_name: KFP run name.
        pipeline_root: Where the run's artifacts are (a local directory under kfp.local).
    """
    from lifecycle.notify.outcome import gather_outcome
    from lifecycle.notify.webhook import send_notification

    try:
        outcome = gather_outcome(
            status,
            model_name,
            pipeline_run_id,
            pipeline_job_name,
            pipeline="training",
            pipeline_root=pipeline_root,
            exit_task="notify-outcome",
        )
        send_notification(outcome)
    except Exception as exc:  # a notification problem must not turn a good run red
        from lifecycle.notify.message import redact

        print(f"notification failed: {redact(f'{type(exc).__name__}: {exc}')}")
