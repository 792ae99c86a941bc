"""Options: the fields of warp-phys's configuration objects, their help and their rules.

Every configuration object (a model family, an optimiser, the training loop, the data) is
a frozen dataclass whose fields are declared with `option(default, help, rule=...)`. One
declaration serves four readers: Python (the field and its default), validation (the
rule, and the choices of a `Literal` annotation, checked on construction by `check`),
`config.json` (`to_json` / `from_json`), and the command line, which turns every field
into a flag with the same help (see `_cli.py`). A field's *flat name* is its name; the
flat names of every object a run is made of are distinct, so presets, `make_config`
overrides and command-line flags all speak one language.
"""

import dataclasses
import types
import typing
from typing import Any, ClassVar, Literal

from ._errors import WarpPhysError


RULES = {
    "positive": "must be positive",
    "non-negative": "must be >= 0",
    "probability": "must be a probability in [0, 1]",
}


class ConfigError(WarpPhysError):
    """A configuration field broke its rule. The message names the Python argument
    (`WARPConfig(width=0): width must be a positive integer`); `as_flag` gives the same
    sentence in the command line's words (`--width must be a positive integer, got 0`).
    A rule may name other fields as `{names}`, filled from `names` in the same words."""

    def __init__(self, owner: str, field: str, rule: str, value: Any = dataclasses.MISSING,
                 names: tuple[str, ...] = ()):
        self.owner, self.field, self.rule, self.value = owner, field, rule, value
        self.names = names
        given = "" if value is dataclasses.MISSING else f"={value!r}"
        super().__init__(f"{owner}({field}{given}): {field} {self._rule(str)}")

    def _rule(self, word) -> str:
        return self.rule.format(names=", ".join(map(word, self.names))) if self.names else self.rule

    def as_flag(self) -> str:
        got = "" if self.value is dataclasses.MISSING else f", got {self.value!r}"
        return f"{flag(self.field)} {self._rule(flag)}{got}"


def flag(name: str) -> str:
    """The command-line flag of a flat field name: `batch_size` -> `--batch-size`."""
    return "--" + name.replace("_", "-")


def option(default: Any, help: str, *, rule: str | None = None) -> Any:
    """A configuration field with its help text and, optionally, a rule from `RULES`
    (integers with `positive` must be positive integers)."""
    if rule is not None and rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}")
    return dataclasses.field(default=default, metadata={"help": help, "rule": rule})


def hints(cls) -> dict[str, Any]:
    """The resolved type annotation of every field of `cls`."""
    return typing.get_type_hints(cls)


def choices(annotation) -> tuple | None:
    """The allowed values of a `Literal[...]` annotation (also inside `X | None`)."""
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if (found := choices(arg)) is not None:
                return found
    return None


def base_type(annotation) -> type:
    """The plain type a field holds: `int | None` -> int, `Literal["a"]` -> str."""
    if (allowed := choices(annotation)) is not None:
        return type(allowed[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


def check(obj) -> None:
    """Check every field of the dataclass `obj` against its annotation and rule; raise a
    `ConfigError` naming the first that breaks."""
    owner = type(obj).__name__
    for field, annotation in hints(type(obj)).items():
        if field not in {f.name for f in dataclasses.fields(obj)}:
            continue
        value = getattr(obj, field)
        rule = next(f for f in dataclasses.fields(obj) if f.name == field).metadata.get("rule")
        if value is None and _optional(annotation):
            continue
        if (allowed := choices(annotation)) is not None:
            if value not in allowed:
                raise ConfigError(owner, field, f"must be one of {', '.join(map(str, allowed))}",
                                  value)
            continue
        plain = base_type(annotation)
        if plain is bool:
            if not isinstance(value, bool):
                raise ConfigError(owner, field, "must be true or false", value)
        elif plain is int:
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(owner, field, "must be an integer", value)
        elif plain is float:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ConfigError(owner, field, "must be a number", value)
        elif isinstance(plain, type) and issubclass(plain, AbstractOptions):
            if not isinstance(value, plain):
                raise ConfigError(owner, field, f"must be a {plain.__name__}", value)
        if rule is not None and not _obeys(rule, value):
            text = RULES[rule]
            if plain is int and rule == "positive":
                text = "must be a positive integer"
            raise ConfigError(owner, field, text, value)


def _optional(annotation) -> bool:
    return (typing.get_origin(annotation) in (typing.Union, types.UnionType)
            and type(None) in typing.get_args(annotation))


def _obeys(rule: str, value) -> bool:
    if rule == "positive":
        return value > 0
    if rule == "non-negative":
        return value >= 0
    return 0.0 <= value <= 1.0


class AbstractOptions:
    """Base of the configuration dataclasses: validated on construction, JSON both ways.

    A subclass that is one of several interchangeable choices (a model family, an
    optimiser) sets `name`, the word that selects it on the command line and in
    `config.json`."""

    name: ClassVar[str] = ""

    def __post_init__(self):
        check(self)

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data = {k: v.to_json() if isinstance(v, AbstractOptions) else v for k, v in data.items()}
        return {"name": self.name, **data} if self.name else data

    @classmethod
    def fields(cls) -> dict[str, dataclasses.Field]:
        """The fields of the class, by name."""
        return {f.name: f for f in dataclasses.fields(cls)}

    @classmethod
    def from_values(cls, values: dict[str, Any], *, strict: bool, where: str = ""):
        """An instance from flat `values`: the keys that name fields of `cls` (the others
        are someone else's). With `strict`, a key no field takes is an error."""
        known = cls.fields()
        taken = {k: v for k, v in values.items() if k in known}
        if strict and (extra := sorted(set(values) - set(known))):
            raise WarpPhysError(f"{cls.__name__} has no option {extra[0]!r}{where}")
        return cls(**taken)
