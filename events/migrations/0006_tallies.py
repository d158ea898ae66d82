"""Tallies: counts that only grow, seeded from the rows there are now."""

from collections import Counter

from django.db import migrations, models
from django.db.models import Count

# The series' names and the lag buckets' bounds (constants; the models used are the historical ones).
from events import tallies


def seed(apps, schema_editor):
    """Start each series at what the rows say today (pruned rows are gone: their counts start here)."""
    Event = apps.get_model("events", "Event")
    Delivery = apps.get_model("events", "Delivery")
    DeliveryAttempt = apps.get_model("events", "DeliveryAttempt")
    Tally = apps.get_model("events", "Tally")
    counts = Counter()
    for name, count in Event.objects.order_by().values_list("name").annotate(count=Count("pk")):
        counts[(tallies.EVENTS, "", name)] += count
    for consumer, status, count in (
        Delivery.objects.filter(status__in=["done", "failed"])
        .order_by()
        .values_list("consumer", "status")
        .annotate(count=Count("pk"))
    ):
        counts[(tallies.DELIVERIES, consumer, status)] += count
    for consumer, outcome, count in (
        DeliveryAttempt.objects.exclude(outcome="running")
        .order_by()
        .values_list("delivery__consumer", "outcome")
        .annotate(count=Count("pk"))
    ):
        counts[(tallies.ATTEMPTS, consumer, outcome)] += count
    done = Delivery.objects.filter(status="done", completed_at__isnull=False).order_by()
    for consumer, created_at, completed_at in done.values_list("consumer", "created_at", "completed_at").iterator(
        chunk_size=5000
    ):
        counts.update(tallies.lags(consumer, [(completed_at - created_at).total_seconds()]))
    Tally.objects.bulk_create(
        [
            Tally(metric=metric, consumer=consumer, label=label, value=value)
            for (metric, consumer, label), value in sorted(counts.items())
        ]
    )


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0005_rename_retries"),
    ]

    operations = [
        migrations.CreateModel(
            name="Tally",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("metric", models.CharField(max_length=32)),
                ("consumer", models.CharField(blank=True, max_length=100)),
                ("label", models.CharField(blank=True, max_length=100)),
                ("value", models.FloatField(default=0)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("metric", "consumer", "label"), name="events_one_tally_per_series")
                ],
            },
        ),
        migrations.RunPython(seed, migrations.RunPython.noop),
    ]
