from django.db import migrations, models


class Migration(migrations.Migration):
    """Schedules by creation time: a superuser's API list of every schedule reads its page from it."""

    dependencies = [
        ("schedules", "0008_backfill"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="schedule",
            index=models.Index(fields=["created_at"], name="schedule_created_at"),
        ),
    ]
