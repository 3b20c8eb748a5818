from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0011_run_nominal_time_index"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="job",
            options={
                "ordering": ["name"],
                "permissions": (
                    ("create_python_jobs", "Can create and change python jobs"),
                    ("create_command_jobs", "Can create and change command jobs"),
                    ("create_internal_webhooks", "Can create webhooks to allow-listed internal destinations"),
                    ("create_celery_jobs", "Can create and change celery jobs"),
                ),
            },
        ),
        migrations.AlterField(
            model_name="job",
            name="target_type",
            field=models.CharField(
                choices=[
                    ("python", "Python function"),
                    ("command", "Management command"),
                    ("http", "HTTP webhook"),
                    ("celery", "Celery task"),
                ],
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="run",
            name="external_id",
            field=models.CharField(blank=True, max_length=255),
        ),
    ]
