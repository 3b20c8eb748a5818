from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('schedules', '0002_schedule_pause_reason'),
    ]

    operations = [
        migrations.AddField(
            model_name='schedule',
            name='code_key',
            field=models.CharField(blank=True, editable=False, help_text='The name of its declaration in code; empty if made by a user.', max_length=200, null=True, unique=True),
        ),
        migrations.AddField(
            model_name='schedule',
            name='code_digest',
            field=models.CharField(blank=True, editable=False, max_length=64),
        ),
    ]
