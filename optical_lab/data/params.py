"""Declared settings: a dataclass field is declared once — default, range or choices, help, command-line
group — and validation, error messages and command-line flags are derived from that one declaration.

In the style of ir_measures' ``ParamInfo`` (``measures/base.py``): the declaration is the field's
``metadata``, so the dataclass stays an ordinary dataclass::

    @dataclass
    class Optimiser:
        lr: float = param(2e-4, "learning rate of AdamW", positive=True, group="optimisation", flag=True)

    validate(Optimiser(lr=-1))   # DataError: lr = -1: must be a finite number > 0 / Fix: e.g. --lr 0.0002

The kind of check follows the field's annotation: ``int`` (an integer >= ``low``), ``float`` (a finite
number in [``low``, ``high``], > ``low`` with ``positive``), ``bool``, ``Literal[...]`` or ``choices``
(one of them; ``choices`` may be a function, read when checked: a list derived from a registry), and
``X | None`` (None allowed). A field without :class:`ParamInfo` is not checked here.

Torch-free (the command line builds ``--help`` from these declarations without loading a model).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal, Union

from .errors import DataError

META = "optical_lab.param"  # the metadata key of a declared field


class _GivenNone:
    """What the command line's ``none_word`` (``--max-train-pairs all``) parses to: None, given explicitly
    (an option left out is None too, and must not override anything)."""

    def __repr__(self) -> str:
        return "GIVEN_NONE"


GIVEN_NONE = _GivenNone()


@dataclass(frozen=True)
class ParamInfo:
    """What a setting is, besides its default: help, the values it takes, and its command-line flag.

    ``positive``/``below``: the value must be > ``low`` / < ``high`` (open bounds).
    ``flag``: the command-line option (``"--ot-grad"``), ``True`` for ``--<name-with-dashes>``, ``None``
    for a setting only code sets. ``none_word``: the command-line word for ``None`` (``"all"``),
    ``none_means``: what None means (``"no cap"``).
    ``example``: a valid value for the error message (default: the field's default); ``fix``: the
    error message's whole fix, where an example value says too little."""

    help: str
    low: float | None = None
    high: float | None = None
    positive: bool = False
    below: bool = False
    choices: tuple[Any, ...] | Callable[[], Iterable[Any]] | None = None
    group: str = "other"
    flag: str | bool | None = None
    none_word: str | None = None
    none_means: str = ""
    example: Any = None
    fix: str = ""


def param(default: Any = dataclasses.MISSING, help: str = "", *, default_factory: Any = dataclasses.MISSING, **info):
    """A dataclass field declared with its :class:`ParamInfo` (keywords: ``low``, ``high``, ``positive``,
    ``below``, ``choices``, ``group``, ``flag``, ``none_word``, ``none_means``, ``example``, ``fix``)."""
    return dataclasses.field(default=default, default_factory=default_factory, metadata={META: ParamInfo(help, **info)})


def info_of(field: dataclasses.Field) -> ParamInfo | None:
    return field.metadata.get(META)


@dataclass(frozen=True)
class Kind:
    """A field's annotation read as a check: the base type, whether None is allowed, Literal choices."""

    base: type | None
    optional: bool
    literal: tuple[Any, ...] = ()


def kind_of(annotation: Any) -> Kind:
    args, optional = (annotation,), False
    if typing.get_origin(annotation) in (Union, types.UnionType):
        args = tuple(a for a in typing.get_args(annotation) if a is not type(None))
        optional = len(args) < len(typing.get_args(annotation))
    (inner,) = args
    if typing.get_origin(inner) is Literal:
        return Kind(None, optional, typing.get_args(inner))
    return Kind(inner if isinstance(inner, type) else None, optional)


def declared(cls: type) -> list[tuple[dataclasses.Field, ParamInfo, Kind]]:
    """Every declared field of the dataclass ``cls`` (inherited ones included), with its info and kind."""
    hints = typing.get_type_hints(cls)
    return [(f, info, kind_of(hints[f.name])) for f in dataclasses.fields(cls) if (info := info_of(f)) is not None]


def choices_of(info: ParamInfo, kind: Kind) -> tuple[Any, ...]:
    choices = info.choices() if callable(info.choices) else info.choices
    return tuple(choices) if choices is not None else kind.literal


def flag_name(name: str, info: ParamInfo) -> str | None:
    """The command-line option of a setting (``None``: code only)."""
    if info.flag is True:
        return "--" + name.replace("_", "-")
    return info.flag or None


def fix_text(owner: str, name: str, info: ParamInfo, example: Any) -> str:
    """A valid value, written as the command line takes it (``--batch-size 16``) or as code."""
    if info.fix:
        return info.fix
    flag = flag_name(name, info)
    return f"e.g. {flag} {example}" if flag else f"e.g. {owner}({name}={example!r})"


def choices_fix(owner: str, name: str, info: ParamInfo, choices: tuple[Any, ...]) -> str:
    words = ", ".join(map(str, choices[:-1])) + f" or {choices[-1]}" if len(choices) > 1 else str(choices[0])
    flag = flag_name(name, info)
    return f"use {flag} {words}" if flag else f"use {owner}({name}=...) with {words}"


def problem(value: Any, info: ParamInfo, kind: Kind) -> str | None:
    """What is wrong with ``value`` for this declaration (None: nothing)."""
    if value is None and kind.optional:
        return None
    extra = f" (or None{': ' + info.none_means if info.none_means else ''})" if kind.optional else ""
    choices = choices_of(info, kind)
    if choices:
        return None if value in choices else f"must be one of {', '.join(map(str, choices))}"
    if kind.base is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if kind.base is int:
        low = -math.inf if info.low is None else info.low
        high = math.inf if info.high is None else info.high
        ok = not isinstance(value, bool) and isinstance(value, int) and low <= value <= high
        return None if ok else f"must be an integer >= {info.low}{extra}"
    if kind.base is float:
        low = -math.inf if info.low is None else info.low
        high = math.inf if info.high is None else info.high
        ok = (
            not isinstance(value, bool)
            and isinstance(value, (int, float))
            and math.isfinite(value)
            and low <= value <= high
            and not (info.positive and value <= low)
            and not (info.below and value >= high)
        )
        bounds = (
            f"in ({low}, {high})"
            if info.positive and info.below
            else f"> {low}"
            if info.positive
            else f"in [{low}, {high}]"
            if high < math.inf
            else f">= {low}"
        )
        return None if ok else f"must be a finite number {bounds}{extra}"
    if isinstance(kind.base, type) and not isinstance(value, kind.base):
        return f"must be a {kind.base.__name__}"
    return None


def validate(obj: Any) -> None:
    """Refuse a value of a declared field of the dataclass instance ``obj`` that its declaration does not
    allow: a :class:`DataError` naming the setting, the value, and a valid value with its flag."""
    owner = type(obj).__name__
    for field, info, kind in declared(type(obj)):
        value = getattr(obj, field.name)
        wrong = problem(value, info, kind)
        if wrong:
            default = field.default if field.default is not dataclasses.MISSING else None
            example = info.example if info.example is not None else default
            choices = choices_of(info, kind)
            fix = (
                choices_fix(owner, field.name, info, choices) if choices else fix_text(owner, field.name, info, example)
            )
            raise DataError(f"{field.name} = {value!r}: {wrong}", fix=fix)


def parse_value(info: ParamInfo, kind: Kind) -> Callable[[str], Any]:
    """The argparse ``type`` of a declared setting (``none_word`` -> :data:`GIVEN_NONE`)."""
    base = kind.base if kind.base in (int, float) else str

    def parse(text: str) -> Any:
        if info.none_word is not None and text.strip().lower() == info.none_word:
            return GIVEN_NONE
        try:
            return base(text)
        except ValueError:
            words = f" or {info.none_word!r}" if info.none_word else ""
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a{'n integer' if base is int else ' number'}{words}"
            ) from None

    parse.__name__ = base.__name__  # argparse names the type in its messages
    return parse


def given(value: Any) -> Any:
    """A parsed option's value as the setting takes it (:data:`GIVEN_NONE` -> None)."""
    return None if value is GIVEN_NONE else value


def add_flag(
    group: argparse._ActionsContainer, name: str, info: ParamInfo, kind: Kind, default: Any, dest: str
) -> None:
    """One ``--flag`` for a declared setting: argparse default None (so an explicit flag is known), the
    declared default shown in the help."""
    flag = flag_name(name, info)
    if default is None:
        shown = info.none_word or "none"
    elif kind.base is bool:
        shown = "on" if default else "off"
    else:
        shown = default
    text = f"{info.help} (default: {shown})" + (
        f"; {info.none_word}: {info.none_means or 'none'}" if info.none_word else ""
    )
    if kind.base is bool:
        group.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=text)
        return
    choices = choices_of(info, kind)
    if choices:
        group.add_argument(flag, dest=dest, choices=list(choices), default=None, help=text)
        return
    group.add_argument(flag, dest=dest, type=parse_value(info, kind), default=None, metavar=name.upper(), help=text)
