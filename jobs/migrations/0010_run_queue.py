from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0009_job_code_key"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="queue",
            field=models.CharField(blank=True, max_length=64),
        ),
    ]
