"""Generate a consumer app: NAME/ with its one declaration, model, service, admin and migration, and tests/NAME/."""

from __future__ import annotations

import dataclasses
import importlib
import keyword
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError, CommandParser
from django.core.management.templates import TemplateCommand

from events.signals import EventSignal

TEMPLATE_DIR = Path(__file__).resolve().parent.parent.parent / "consumer_template"
# The longest names the template's lines fit within ruff's line length with (tests/events/test_startconsumer.py).
MAX_NAME_LENGTH = 24
MAX_HANDLER_LENGTH = 40


def event_signals() -> dict[str, list[tuple[str, EventSignal]]]:
    """Map each EventSignal's name in an installed app's signals module to (module, signal) pairs."""
    found: dict[str, list[tuple[str, EventSignal]]] = {}
    for config in apps.get_app_configs():
        module_name = f"{config.name}.signals"
        if find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        for attribute, value in vars(module).items():
            if isinstance(value, EventSignal):
                found.setdefault(attribute, []).append((module_name, value))
    return found


def resolve_signal(name: str) -> tuple[str, str, EventSignal]:
    """Return (module, name, signal) of the EventSignal a bare or dotted name names; CommandError if none."""
    known = event_signals()
    module_name, _dot, signal_name = name.rpartition(".")
    matches = [(module, signal) for module, signal in known.get(signal_name, []) if module_name in ("", module)]
    if len(matches) == 1:
        module, signal = matches[0]
        return module, signal_name, signal
    choices = sorted(f"{module}.{attribute}" for attribute, found in known.items() for module, _signal in found)
    if matches:
        raise CommandError(
            f"--event {name!r} is ambiguous: {', '.join(f'{module}.{signal_name}' for module, _ in matches)}. "
            "Name it with its module."
        )
    raise CommandError(f"--event {name!r} names no EventSignal. Known: {', '.join(choices) or 'none'}.")


def import_lines(*imports: tuple[str, str]) -> str:
    """Return the from-imports of (module, name) pairs, one line a module, in the order ruff's isort wants."""
    by_module: dict[str, set[str]] = {}
    for module, name in imports:
        by_module.setdefault(module, set()).add(name)

    def member_order(name: str) -> tuple[int, str]:
        # isort's order by type: constants, then classes, then functions and the rest.
        return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name.lower())

    return "\n".join(
        f"from {module} import {', '.join(sorted(names, key=member_order))}"
        for module, names in sorted(by_module.items(), key=lambda item: item[0].lower())
    )


def event_fields(event_class: type[Any]) -> set[str]:
    """Return the names of an event class's fields."""
    if dataclasses.is_dataclass(event_class):
        return {field.name for field in dataclasses.fields(event_class)}
    return set(getattr(event_class, "__annotations__", {}))


class Command(TemplateCommand):
    """Render events/consumer_template/ into NAME/ and tests/NAME/: a consumer app that works as generated."""

    help = (
        "Create a consumer app NAME (NAME/ and tests/NAME/) for the events of --event: one declaration in "
        "NAME/tasks.py, a record per event (model, migration, read-only admin) and tests that pass. Then add "
        "NAME to INSTALLED_APPS and migrate."
    )
    missing_args_message = "You must provide the consumer app's name."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The new app's name (and label): a Python identifier, not an existing module.")
        parser.add_argument(
            "directory",
            nargs="?",
            help="The project's root, where NAME/ and tests/NAME/ are created. Default: settings.BASE_DIR.",
        )
        parser.add_argument(
            "--event",
            required=True,
            help="The EventSignal to consume, as named in an app's signals module (user_created) or dotted "
            "(users.signals.user_created).",
        )
        parser.add_argument(
            "--external",
            action="store_true",
            help="An effect outside this database (an e-mail, an HTTP call): one event at a time, "
            "failures raised as TransientError or PermanentError. Default: atomic, a batch in one insert.",
        )
        parser.add_argument(
            "--handler",
            help="The handler's name, which makes the consumer's name <NAME>.<handler>. Default: handle_<event>.",
        )

    def handle(self, **options: Any) -> None:
        name: str = options.pop("name")
        root = Path(options.pop("directory") or settings.BASE_DIR).expanduser().resolve()
        self.app_or_project, self.a_or_an = "app", "an"
        self._check_name(name, root=root)
        signal_module, signal_name, signal = resolve_signal(options.pop("event"))
        event_class = signal.event_class
        if "user_id" not in event_fields(event_class):
            raise CommandError(
                f"{event_class.__name__} has no user_id: the template records, and its admin searches, "
                "the user each event names."
            )
        handler = options.pop("handler") or f"handle_{signal_name}"
        if not handler.isidentifier() or keyword.iskeyword(handler) or len(handler) > MAX_HANDLER_LENGTH:
            raise CommandError(
                f"--handler {handler!r} is not a Python identifier of at most {MAX_HANDLER_LENGTH} characters."
            )
        auto_field_module, _dot, auto_field = settings.DEFAULT_AUTO_FIELD.rpartition(".")
        if auto_field_module != "django.db.models":
            raise CommandError(
                f"The template's migration needs a DEFAULT_AUTO_FIELD of django.db.models, "
                f"not {settings.DEFAULT_AUTO_FIELD}."
            )
        external = options.pop("external")
        context = {
            **options,
            **self._names(name=name, event_class=event_class, external=external),
            "consumer": f"{name}.{handler}",
            "handler": handler,
            "signal_module": signal_module,
            "signal_name": signal_name,
            "app_verbose_name": name.replace("_", " ").capitalize(),
            "verbose_name": f"{name.replace('_', ' ')} record",
            "auto_field": auto_field,
            "external": external,
            "extensions": ["py"],
            "files": [],
        }
        context.update(
            self._imports(app=name, signal_module=signal_module, event_module=event_class.__module__, context=context)
        )
        # The tests first: once NAME/ exists, TemplateCommand's own check finds NAME importable and refuses it.
        for part, target in (("tests", root / "tests" / name), ("app", root / name)):
            super().handle("app", name, str(target), **{**context, "template": str(TEMPLATE_DIR / part)})
        self._report(name=name, root=root, context=context)

    @staticmethod
    def _names(*, name: str, event_class: type[Any], external: bool) -> dict[str, str]:
        """Name what the template defines: the record model, the service, the user model and the event's factory."""
        user_model = get_user_model()
        camel_case = "".join(x for x in name.title() if x != "_")  # as TemplateCommand's camel_case_app_name
        return {
            "model": f"{camel_case}Record",
            "service": f"{name}_effect_apply" if external else f"{name}_records_create",
            "permanent_error": f"{camel_case}PermanentError",
            "event_class": event_class.__name__,
            "event_factory": f"{event_class.__name__}Factory",
            "user_module": user_model.__module__,
            "user_class": user_model.__name__,
        }

    @staticmethod
    def _imports(*, app: str, signal_module: str, event_module: str, context: dict[str, Any]) -> dict[str, str]:
        """Return each generated module's first-party imports: their order depends on the names."""
        model = (f"{app}.models", context["model"])
        service = (f"{app}.services", context["service"])
        handler = (f"{app}.tasks", context["handler"])
        event = (event_module, context["event_class"])
        user = (context["user_module"], context["user_class"])
        event_factory = ("tests.factories", context["event_factory"])
        run_due = ("events.testing", "run_due")
        external = context["external"]
        errors = [("events.api", "PermanentError"), ("events.api", "TransientError")] if external else []
        refusal = [("events.models", "Delivery"), (f"{app}.services", context["permanent_error"])] if external else []
        return {
            "services_imports": import_lines(model, event, user, *errors),
            "tasks_imports": import_lines(
                service, ("events.api", "consumer"), event, (signal_module, context["signal_name"])
            ),
            "admin_imports": import_lines(
                model, *[("events.operator.api", name) for name in ("SearchByUserEmail", "event_link", "user_link")]
            ),
            "test_services_imports": import_lines(model, service, event_factory, ("tests.factories", "UserFactory")),
            "test_tasks_imports": import_lines(model, handler, run_due, event_factory, *refusal),
            "test_admin_imports": import_lines(model, handler, run_due, event_factory, user),
        }

    def _check_name(self, name: str, *, root: Path) -> None:
        """Refuse a name startapp would refuse, an installed app's label, or one whose directories exist."""
        if not name.isidentifier() or keyword.iskeyword(name):
            raise CommandError(f"'{name}' is not a valid app name. Please make sure the name is a valid identifier.")
        if len(name) > MAX_NAME_LENGTH:
            raise CommandError(
                f"'{name}' is longer than {MAX_NAME_LENGTH} characters: the name starts the consumer's, its queue's "
                "and its tables' names, and the generated code is laid out for it."
            )
        if name in {config.label for config in apps.get_app_configs()}:
            raise CommandError(f"'{name}' is the label of an installed app: choose another name.")
        for existing in (root / name, root / "tests" / name):
            if existing.exists():
                raise CommandError(f"{existing} already exists: startconsumer overwrites nothing.")
        self.validate_name(name)

    def _report(self, *, name: str, root: Path, context: dict[str, Any]) -> None:
        kind = "external, one event at a time" if context["external"] else "atomic, many=True"
        self.stdout.write(
            self.style.SUCCESS(
                f"Created the consumer {context['consumer']} ({kind}) of "
                f"{context['signal_module']}.{context['signal_name']} in {root / name} and {root / 'tests' / name}."
            )
        )
        self.stdout.write(
            f"Next: add {name!r} to INSTALLED_APPS, then `python manage.py migrate`. To backfill the events "
            f"published before it existed: `python manage.py replay_events --consumer {context['consumer']} "
            "--since <date>`."
        )
        factories = root / "tests" / "factories.py"
        if factories.exists() and f"class {context['event_factory']}(" not in factories.read_text():
            self.stderr.write(
                f"tests/factories.py has no {context['event_factory']}: the generated tests publish events with it."
            )
