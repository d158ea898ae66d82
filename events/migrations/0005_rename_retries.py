from django.db import migrations, models


class Migration(migrations.Migration):
    """Delivery.retries becomes attempts_since_replay: what it counts (RetrySchedule.attempt_limit is its bound)."""

    dependencies = [
        ("events", "0004_operators"),
    ]

    operations = [
        migrations.RenameField(model_name="delivery", old_name="retries", new_name="attempts_since_replay"),
        migrations.AlterField(
            model_name="delivery",
            name="attempts_since_replay",
            field=models.PositiveIntegerField(
                default=0,
                help_text="Attempts since the delivery was created or last replayed: what its retry schedule counts.",
            ),
        ),
    ]
