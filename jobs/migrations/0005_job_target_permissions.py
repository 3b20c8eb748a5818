from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0004_run_fire_key_index'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='job',
            options={
                'ordering': ['name'],
                'permissions': (
                    ('create_python_jobs', 'Can create and change python jobs'),
                    ('create_command_jobs', 'Can create and change command jobs'),
                    ('create_internal_webhooks', 'Can create webhooks to allow-listed internal destinations'),
                ),
            },
        ),
    ]
