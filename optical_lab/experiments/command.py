"""What every ``optical-lab`` command shares: the help layout, deprecated spellings, ``python -m`` entry.

The convention (``optical_lab/cli.py`` lists every command in one table): a command module defines
``add_arguments(parser)`` and ``main(args)``; ``main`` returns ``None`` or an exit status. A module
that was run as ``python -m optical_lab.X`` keeps working through :func:`run_module`, which builds the
same parser and calls the same ``main``.

Names, the same in every command: a singular flag takes one value and a plural flag a comma-separated
list (``--lang hau`` / ``--langs hau,swa``, ``--task`` / ``--tasks``); ``--seed N`` is one seed value,
``--seeds N`` a number of seeds (0..N-1). An old spelling stays accepted, hidden from ``--help``, and
warns once used (:func:`deprecated_flag`, :func:`deprecated_values`).
"""

from __future__ import annotations

import argparse
import warnings
from typing import Callable


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions as written and shows every option's default after its help.

    ``(default: X)`` is appended unless the help text already says what the default is; a flag that
    is off unless given shows ``(default: off)``, an unset value ``(default: not set)``.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default is argparse.SUPPRESS or action.required:
            return text  # said already, hidden, or must be given
        if not action.option_strings and action.nargs not in ("?", "*"):
            return text  # a required positional has no default
        return f"{text} (default: {shown_default(action.default)})".lstrip()


def shown_default(value: object) -> str:
    """How a default reads in ``--help`` (``%`` escaped: argparse %-formats help texts)."""
    if value is None:
        shown = "not set"
    elif value is True or value is False:
        shown = "on" if value else "off"
    elif isinstance(value, (list, tuple)):
        shown = ",".join(map(str, value)) or "none"
    else:
        shown = str(value)
    return shown.replace("%", "%%")


def deprecated(message: str) -> None:
    """Warn that an old spelling was used (``FutureWarning``: shown to users, unlike ``DeprecationWarning``)."""
    warnings.warn(message, FutureWarning, stacklevel=3)


class _DeprecatedFlag(argparse.Action):
    """An old option name: stores into the new option's destination and warns."""

    def __init__(self, option_strings, dest, replacement: str = "", **kwargs):
        self.replacement = replacement
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        deprecated(f"{option_string} is deprecated: use {self.replacement}")
        setattr(namespace, self.dest, values)


def deprecated_flag(parser: argparse.ArgumentParser, old: str, new: str) -> None:
    """Accept ``old`` as a hidden alias of the (value-taking) option ``new``, with a warning when used."""
    action = parser._option_string_actions[new]
    parser.add_argument(
        old,
        dest=action.dest,
        type=action.type,
        nargs=action.nargs,
        choices=action.choices,
        default=argparse.SUPPRESS,
        action=_DeprecatedFlag,
        replacement=new,
        help=argparse.SUPPRESS,
    )


def deprecated_values(parser: argparse.ArgumentParser, flag: str, aliases: dict[str, str]) -> None:
    """Accept the old values in ``aliases`` for ``flag`` (mapped to the new ones, with a warning).

    They are not listed among the option's choices; argparse converts a value before it checks the
    choices, so the conversion happens in the option's ``type``.
    """
    action = parser._option_string_actions[flag]
    convert = action.type or str

    def resolve(text: str):
        if text in aliases:
            deprecated(f"{flag} {text} is deprecated: use {flag} {aliases[text]}")
            text = aliases[text]
        return convert(text)

    resolve.__name__ = getattr(convert, "__name__", "value")  # argparse names it in "invalid value" errors
    action.type = resolve


def new_parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    """A parser with the commands' help layout."""
    return argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter)


def run_module(
    add_arguments: Callable[[argparse.ArgumentParser], None],
    main: Callable[[argparse.Namespace], int | None],
    prog: str,
    description: str | None = None,
    argv: list[str] | None = None,
) -> int:
    """``python -m optical_lab.X``: the command's own parser and ``main``, as ``optical-lab`` runs them."""
    parser = new_parser(prog, description)
    add_arguments(parser)
    return int(main(parser.parse_args(argv)) or 0)
