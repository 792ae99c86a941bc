"""Command-line flags generated from the configuration objects.

Every field of `Data`, of each model config in `MODELS`, of each optimiser in
`OPTIMISERS` and of `Training` becomes one flag (`batch_size` -> `--batch-size`) with
the field's help, its choices (from a `Literal` annotation) and its default, grouped in
`--help` as data, model, optimiser and training. A flag that is not given passes nothing,
so the preset's value stands. Library errors name Python arguments; `translate` says the
same in flags.
"""

import dataclasses
import re

import click

from ._config import Data, Training
from ._models import MODELS
from ._optimiser import OPTIMISERS
from ._options import ConfigError, base_type, choices, flag, hints


GROUPS = (
    ("Data", (Data,)),
    ("Model", tuple(MODELS.values())),
    ("Optimiser", tuple(OPTIMISERS.values())),
    ("Training", (Training,)),
)


class GroupedCommand(click.Command):
    """A command whose `--help` lists its options under headings (`option.group`)."""

    def format_options(self, ctx, formatter):
        sections: dict[str, list] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx) if isinstance(param, click.Option) else None
            if record is not None:
                sections.setdefault(getattr(param, "group", "Run"), []).append(record)
        for name, rows in sections.items():
            heading = f"{name} options" + ("" if name == "Run" else
                                           " (a preset fills those not given)")
            with formatter.section(heading):
                formatter.write_dl(rows)


def config_options() -> list[click.Option]:
    """One click option per configuration field, in `GROUPS` order; a field several
    classes share (e.g. `width`) is one flag, its help naming the classes that have it."""
    fields: dict[str, tuple[str, dataclasses.Field, object, list[type]]] = {}
    for group, classes in GROUPS:
        for cls in classes:
            annotations = hints(cls)
            for name, field in cls.fields().items():
                if name in fields:
                    fields[name][3].append(cls)
                else:
                    fields[name] = (group, field, annotations[name], [cls])
    return [_option(name, *entry) for name, entry in fields.items()]


def _option(name, group, field, annotation, owners) -> click.Option:
    plain, allowed = base_type(annotation), choices(annotation)
    text = field.metadata.get("help", "")
    if group == "Model" and len(owners) < len(MODELS):
        text += f" [{', '.join(o.name for o in owners)}]"
    default = field.default
    text += f" [default: {'none' if default is None else default}]"
    if plain is bool:
        option = click.Option([f"{flag(name)}/--no-{flag(name)[2:]}"], default=None, help=text)
    else:
        param_type = click.Choice(allowed) if allowed else {int: int, float: float}.get(plain, str)
        option = click.Option([flag(name)], type=param_type, default=None, help=text)
    option.group = group
    return option


def given(params: dict) -> dict:
    """The configuration options actually given on the command line."""
    names = {o.name for o in config_options()}
    return {k: v for k, v in params.items() if k in names and v is not None}


_ASSIGNMENT = re.compile(r"\b([a-z][a-z0-9_]*)=('([^']*)'|([^\s,;)]+))")


def translate(error: Exception) -> str:
    """A library error in command-line words: `forcing=1` -> `--forcing 1`."""
    if isinstance(error, ConfigError):
        return error.as_flag()
    names = {o.name for o in config_options()} | {"seed", "model", "optimiser", "preset"}

    def words(match):
        name, value = match.group(1), match.group(3) or match.group(4)
        if name not in names:
            return match.group(0)
        if value in ("True", "False"):
            return flag(name) if value == "True" else f"--no-{flag(name)[2:]}"
        return f"{flag(name)} {value}"

    return _ASSIGNMENT.sub(words, str(error))
