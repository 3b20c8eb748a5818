import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """The finished-at index: purge_runs reads by it, and jobs/retention.py makes it the runs'
    TTL index (its expireAfterSeconds follows the settings after every migrate). Runs by job,
    schedule or status then newest first, ties by id, as the lists order them (in place of the
    two-key ones and of the foreign keys' own). Jobs by name: a
    superuser's API list of every job reads its page from it."""

    dependencies = [
        ("jobs", "0012_celery_target"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="job",
            index=models.Index(fields=["name"], name="job_name"),
        ),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["finished_at"], name="run_finished_at"),
        ),
        # (job | schedule | status, -nominal_time) gain the id as a last key: lists ordered
        # newest first, ties by id, are read off them. Built before the old ones go, so every
        # query keeps an index while this runs.
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["job", "-nominal_time", "-id"], name="run_job_nominal_time"),
        ),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["schedule", "-nominal_time", "-id"], name="run_schedule_nominal_time"),
        ),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["status", "-nominal_time", "-id"], name="run_status_nominal_time"),
        ),
        # Their own foreign-key indexes go too: the compound ones start with them.
        migrations.AlterField(
            model_name="run",
            name="job",
            field=models.ForeignKey(
                db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="runs", to="jobs.job"
            ),
        ),
        migrations.AlterField(
            model_name="run",
            name="schedule",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="runs",
                to="schedules.schedule",
            ),
        ),
        migrations.RemoveIndex(model_name="run", name="jobs_run_job_id_847d4f_idx"),
        migrations.RemoveIndex(model_name="run", name="jobs_run_schedul_04edcb_idx"),
        migrations.RemoveIndex(model_name="run", name="jobs_run_status_be8836_idx"),
    ]
