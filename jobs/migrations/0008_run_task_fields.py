from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0007_python_targets_name_tasks"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="target",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="run",
            name="return_value",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="run",
            name="exception_class",
            field=models.CharField(blank=True, max_length=200),
        ),
    ]
