"""On PostgreSQL, only the audit table's owner may lift the append-only guard: the application's role may not."""

from django.db import migrations

# audit.allow_erase is a custom setting: any session may set it. Honoured only when the role acting
# has the table owner's privileges (USAGE: without SET ROLE), it gives nothing away, since the owner
# may drop the trigger anyway. search_path is pinned so that no role may shadow a function or the
# = operator this guard calls with its own (a schema it may create in, ahead of pg_catalog).
OWNER_ONLY = """
CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF current_setting('audit.allow_erase', true) = 'on'
        AND pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'USAGE') THEN
        -- Go ahead (for TRUNCATE, a statement trigger, the value is ignored).
        IF TG_OP = 'UPDATE' THEN
            RETURN NEW;
        END IF;
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit entries are append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
"""
# The function as migration 0003 created it (a full redefinition: the pinned search_path goes too).
ANY_SESSION = """
CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('audit.allow_erase', true) = 'on' THEN
        -- Go ahead (for TRUNCATE, a statement trigger, the value is ignored).
        IF TG_OP = 'UPDATE' THEN
            RETURN NEW;
        END IF;
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit entries are append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
"""


def owner_only(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(OWNER_ONLY, params=None)


def any_session(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(ANY_SESSION, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0004_operator_actions"),
    ]

    operations = [migrations.RunPython(owner_only, any_session, elidable=False)]
