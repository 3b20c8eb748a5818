from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0002_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='job',
            name='pause_schedules_after_failures',
            field=models.PositiveSmallIntegerField(blank=True, help_text='Pause a schedule once this many of its runs in a row failed (after retries). Blank: never.', null=True),
        ),
    ]
