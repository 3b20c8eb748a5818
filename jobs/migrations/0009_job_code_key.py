from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0008_run_task_fields'),
    ]

    operations = [
        migrations.AddField(
            model_name='job',
            name='code_key',
            field=models.CharField(blank=True, editable=False, help_text='The name of the schedule declared in code that this job belongs to; empty if made by a user.', max_length=200, null=True, unique=True),
        ),
    ]
