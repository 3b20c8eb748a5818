from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('schedules', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='schedule',
            name='pause_reason',
            field=models.CharField(blank=True, editable=False, max_length=500),
        ),
    ]
