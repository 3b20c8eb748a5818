from django.db import migrations, models


class Migration(migrations.Migration):
    """The finished-at index: purge_runs reads by it, and jobs/retention.py makes it the runs'
    TTL index (its expireAfterSeconds follows the settings after every migrate). And jobs by
    name: a superuser's API list of every job reads its page from it."""

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
    ]
