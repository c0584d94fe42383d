from django.apps import AppConfig


class PipelineConfig(AppConfig):
    name = "pipeline"
    verbose_name = "AI pipeline"

    def ready(self) -> None:
        from hsi import dead_letter
        from pipeline.services.dlq import failed_job_record, failed_jobs_resolve

        # the notification outbox (alerts) dead-letters, and resolves dead letters, through the hook
        dead_letter.install(failed_job_record, failed_jobs_resolve)
