"""The ``finance`` group the console admits (with is_staff), so an admin can assign it from
the Django admin right after migrating."""

from django.db import migrations


def group_create(apps, schema_editor):
    apps.get_model("auth", "Group").objects.get_or_create(name="finance")


class Migration(migrations.Migration):
    dependencies = [("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunPython(group_create, migrations.RunPython.noop)]
