import django.db.models.deletion
from django.db import migrations, models


def create_sweep_row(apps, schema_editor):
    # Far in the past: the first sweep always runs.
    from datetime import UTC, datetime

    apps.get_model("events", "SweepRun").objects.get_or_create(pk=1, defaults={"started_at": datetime(2000, 1, 1, tzinfo=UTC)})


def clear_done_due_times(apps, schema_editor):
    Delivery = apps.get_model("events", "Delivery")
    Delivery.objects.exclude(status="pending").update(due_at=None, last_error="")
    Delivery.objects.filter(status="pending").update(retries=models.F("attempts"))


class Migration(migrations.Migration):

    dependencies = [
        ('events', '0002_delivery'),
    ]

    operations = [
        migrations.RemoveIndex(model_name='delivery', name='events_delivery_pending_due'),
        migrations.RemoveField(model_name='delivery', name='sweeps'),
        migrations.AddField(
            model_name='delivery',
            name='retries',
            field=models.PositiveIntegerField(default=0, help_text="Attempts since the delivery was created or last replayed: the retry schedule's count."),
        ),
        migrations.AlterField(
            model_name='delivery',
            name='attempts',
            field=models.PositiveIntegerField(default=0, help_text='Attempts ever started; replay never resets it.'),
        ),
        migrations.AlterField(
            model_name='delivery',
            name='consumer',
            field=models.CharField(help_text="The consumer's name, from its declaration.", max_length=100),
        ),
        migrations.AlterField(
            model_name='delivery',
            name='due_at',
            field=models.DateTimeField(blank=True, help_text='When a pending delivery may run (next).', null=True),
        ),
        migrations.AddIndex(
            model_name='delivery',
            index=models.Index(condition=models.Q(('status', 'pending')), fields=['consumer', 'due_at'], name='events_delivery_pending_due'),
        ),
        migrations.RunPython(clear_done_due_times, migrations.RunPython.noop),
        migrations.CreateModel(
            name='DeliveryAttempt',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('number', models.PositiveIntegerField()),
                ('worker', models.CharField(max_length=200)),
                ('started_at', models.DateTimeField()),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('outcome', models.CharField(choices=[('running', 'Running'), ('done', 'Done'), ('retry', 'Failed, retry scheduled'), ('failed', 'Failed for good'), ('lost', 'Lost (its worker died)')], default='running', max_length=16)),
                ('error', models.TextField(blank=True)),
                ('delivery', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='attempt_history', to='events.delivery')),
            ],
            options={
                'ordering': ['delivery', 'number'],
                'indexes': [models.Index(condition=models.Q(('outcome', 'running')), fields=['delivery'], name='events_attempt_running')],
                'constraints': [models.UniqueConstraint(fields=('delivery', 'number'), name='events_one_attempt_per_number')],
            },
        ),
        migrations.CreateModel(
            name='SweepRun',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('started_at', models.DateTimeField()),
            ],
        ),
        migrations.RunPython(create_sweep_row, migrations.RunPython.noop),
    ]
