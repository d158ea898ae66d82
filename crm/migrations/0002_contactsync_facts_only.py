from django.db import migrations, models


def drop_unsynced(apps, schema_editor):
    # A sync that never succeeded is no fact; its delivery keeps the attempts and the error.
    apps.get_model("crm", "ContactSync").objects.exclude(status="synced").delete()


class Migration(migrations.Migration):

    dependencies = [
        ('crm', '0001_initial'),
    ]

    operations = [
        migrations.RunPython(drop_unsynced, migrations.RunPython.noop),
        migrations.RemoveField(model_name='contactsync', name='attempts'),
        migrations.RemoveField(model_name='contactsync', name='last_error'),
        migrations.RemoveField(model_name='contactsync', name='status'),
        migrations.RemoveField(model_name='contactsync', name='updated_at'),
        migrations.AlterModelOptions(
            name='contactsync',
            options={'ordering': ['-synced_at'], 'verbose_name': 'CRM contact sync'},
        ),
        migrations.AlterField(
            model_name='contactsync',
            name='synced_at',
            field=models.DateTimeField(),
        ),
    ]
