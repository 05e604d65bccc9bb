"""The command surface: one table, light commands without torch, help on every flag, deprecated spellings."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

from optical_lab.cli import COMMANDS, build_parser, chosen_command, main
from optical_lab.experiments.command import HelpFormatter

# flags whose help other changes own: the training settings become derived from the config metadata
# (issue #30), the sweep's options belong to protocol v3. The test fails once one of them has a help
# text, so that the entry is removed from here.
WITHOUT_HELP_YET: set[str] = set()  # flags still without help (none since the settings carry their own)
CITING_AN_ISSUE_YET: set[str] = set()
ISSUE = re.compile(r"issue\s*#?\d+|#\d+", re.IGNORECASE)


def torch_free(argv: list[str]) -> subprocess.CompletedProcess:
    """Run ``optical-lab ARGV`` in a fresh interpreter; it prints whether torch was imported."""
    code = (
        "import sys\nfrom optical_lab.cli import main\n"
        "try:\n    status = main(sys.argv[1:])\nexcept SystemExit as exit:\n    status = exit.code\n"
        "print('TORCH', 'torch' in sys.modules)\nsys.exit(status)\n"
    )
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("argv", [["--help"], ["data", "where"], ["report", "--help"], ["data", "--help"]])
def test_help_and_data_commands_do_not_import_torch(argv):
    done = torch_free(argv)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("TORCH False"), done.stdout[-500:]


def test_top_level_help_lists_every_command_from_the_table_and_says_where_to_start():
    done = torch_free(["--help"])
    for name, command in COMMANDS.items():
        assert name in done.stdout and command.help.split()[0] in done.stdout
    assert "optical-lab data where" in done.stdout and "docs/guide.md" in done.stdout


@pytest.mark.parametrize("command", ["compare", "train", "sweep"])
def test_the_training_commands_help_does_not_import_torch(command):
    done = torch_free([command, "--help"])
    assert done.returncode == 0, done.stderr
    assert "--help" in done.stdout and done.stdout.rstrip().endswith("TORCH False"), done.stdout[-500:]


# commands whose module still loads the encoder (torch) when imported, so building their parser does too. The test
# below fails once one of them builds its parser without torch, so that it is removed from here.
PARSER_IMPORTS_TORCH_YET = {"explore"}
PARSER_TORCH = (
    "import sys\nfrom optical_lab.cli import build_parser\n"
    "for name in sys.argv[1:]:\n    build_parser(name.split())\n    print(name, '|', 'torch' in sys.modules)\n"
)


def parsers_import_torch(commands: list[str]) -> dict[str, bool]:
    """Build each command's parser in turn in one fresh interpreter: command -> whether torch is loaded after it."""
    done = subprocess.run(
        [sys.executable, "-c", PARSER_TORCH, *commands], capture_output=True, text=True, timeout=300, check=True
    )
    return {name: flag == "True" for name, flag in (line.split(" | ") for line in done.stdout.splitlines())}


def test_every_command_parser_is_built_without_torch():
    light = [name for name in COMMANDS if name not in PARSER_IMPORTS_TORCH_YET]
    assert parsers_import_torch(light) == dict.fromkeys(light, False)  # each built, none loaded torch
    for name in sorted(PARSER_IMPORTS_TORCH_YET):  # still heavy (one interpreter each: torch stays once loaded)
        assert parsers_import_torch([name]) == {name: True}, f"{name}'s parser is torch-free now: drop it from the set"


def test_the_command_is_read_before_parsing():
    assert chosen_command(["--debug", "compare", "--langs", "hau"]) == "compare"
    assert chosen_command(["report", "v2", "results/x"]) == "report v2"
    assert chosen_command(["data", "where"]) == "data"
    assert chosen_command(["--help"]) is None and chosen_command(["report"]) is None
    # only the chosen command's module is asked for its arguments
    parser = build_parser(["data", "where"])
    sub = parser._subparsers._group_actions[0].choices
    assert {a.dest for a in sub["data"]._actions} >= {"action", "langs"}
    assert {a.dest for a in sub["compare"]._actions} == {"help", "debug"}


def walk(parser: argparse.ArgumentParser, name: str = ""):
    """(command, action) for every argument of every (sub)command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from walk(sub, f"{name} {sub_name}".strip())
        elif not isinstance(action, argparse._HelpAction) and action.help is not argparse.SUPPRESS:
            yield name, action


def test_every_flag_has_help_and_every_option_shows_its_default():
    missing, no_default, citing = [], [], []
    for name, action in walk(build_parser()):
        label = f"{name} {action.option_strings[0] if action.option_strings else action.dest}"
        if not action.help:
            missing.append(label)
            continue
        shown = HelpFormatter("optical-lab")._get_help_string(action)
        optional = action.option_strings and not action.required and action.default is not argparse.SUPPRESS
        if optional and "default" not in shown:
            no_default.append(label)
        if ISSUE.search(action.help):  # a user does not know the project's issues
            citing.append(label)
    assert sorted(set(missing) - WITHOUT_HELP_YET) == [], "flags without help"
    assert sorted(WITHOUT_HELP_YET - set(missing)) == [], "these have help now: drop them from WITHOUT_HELP_YET"
    assert no_default == []
    assert sorted(set(citing) ^ CITING_AN_ISSUE_YET) == [], "help citing an issue number (or fixed: update the set)"


def test_help_formatter_shows_defaults_once():
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter)
    parser.add_argument("--a", default=5, help="a number")
    parser.add_argument("--b", default=None, help="a path (default: the run's)")
    parser.add_argument("--c", action="store_true", help="a switch")
    parser.add_argument("--d", default="10%", help="a share")
    text = parser.format_help()
    assert "a number (default: 5)" in text and "(default: the run's)" in text and text.count("default") == 4
    assert "a switch (default: off)" in text and "a share (default: 10%)" in text


def test_compare_help_has_groups():
    compare = build_parser(["compare"])._subparsers._group_actions[0].choices["compare"]
    titles = [group.title for group in compare._action_groups]
    assert {"what is compared", "running and output"} <= set(titles) and len(titles) >= 6


def test_old_spellings_still_parse_and_warn():
    parser = build_parser()
    with pytest.warns(FutureWarning, match="--task is deprecated: use --tasks"):
        assert parser.parse_args(["evaluate", "--task", "ntrex-clir"]).tasks == "ntrex-clir"
    with pytest.warns(FutureWarning, match="--task ntrex-sentence is deprecated: use --task ntrex-sentences"):
        assert parser.parse_args(["compare", "--task", "ntrex-sentence"]).task == "ntrex-sentences"
    with pytest.warns(FutureWarning, match="--preset demo is deprecated: use --preset default"):
        assert parser.parse_args(["compare", "--preset", "demo"]).preset == "default"
    compare_help = parser._subparsers._group_actions[0].choices["compare"].format_help()
    assert "ntrex-sentence," not in compare_help and "demo" not in compare_help  # hidden from --help


def test_a_bad_command_line_is_a_one_line_error(capsys):
    assert main(["plan"]) == 1
    assert capsys.readouterr().err.startswith("error: name a results folder or --grid")


def test_python_dash_m_runs_the_same_command():
    """The older ``python -m optical_lab.X`` spelling is a thin wrapper over the same add_arguments/main."""
    done = subprocess.run(
        [sys.executable, "-m", "optical_lab.reports.readme", "--check", "README.md"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    via_cli = torch_free(["report", "readme", "--check", "README.md"])
    assert done.returncode == via_cli.returncode == 0, done.stderr + via_cli.stderr
    assert via_cli.stdout.rstrip().endswith("TORCH False")
