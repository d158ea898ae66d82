from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('notifications', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='notification',
            name='message_id',
            field=models.CharField(blank=True, help_text='The same on every resend.', max_length=255, verbose_name='Message-ID'),
        ),
    ]
