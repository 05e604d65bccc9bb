"""Keep the numbers in README (and other markdown) identical to the results files they come from.

A block in a markdown file marked

    <!-- include results/compare-minilm/summary.md sections=2 -->
    ... (generated, do not edit) ...
    <!-- end include -->

is replaced by the named file (relative to the repository root): the whole file, only its first
``sections`` ``## `` sections, or (``section="What ran"``) the body of that one section; ``## ``
headings are demoted to ``### `` so they nest under the README's own headings.
``optical-lab report readme`` rewrites the blocks;
``--check`` exits non-zero (and ``tests/reports/test_readme_sync.py`` fails) when a block is stale, so a
number in the README cannot drift from the run that produced it.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..experiments.command import run_module

BLOCK = re.compile(
    r'(?P<open><!-- include (?P<path>\S+)(?: sections=(?P<sections>\d+))?(?: section="(?P<section>[^"]+)")? -->\n)'
    r"(?P<body>.*?)(?P<close><!-- end include -->)",
    re.DOTALL,
)
REPO = Path(__file__).resolve().parents[2]
DEFAULT_FILES = ("README.md", "docs/results.md", "docs/qald.md", "docs/results_suite_zero_shot.md")


def included_text(path: Path, sections: int | None = None, section: str | None = None) -> str:
    """The text a block shows: ``path``'s content, cut to its first ``sections`` ``## `` sections, or
    only the body of the ``## `` section titled ``section``."""
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is included by a markdown block but does not exist: run the command that writes it"
        )
    text = path.read_text(encoding="utf-8").strip("\n")
    if section is not None:
        found = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^#{{1,2}} |\Z)", text, flags=re.MULTILINE | re.DOTALL)
        if found is None:
            raise ValueError(f"{path} has no section '## {section}'")
        text = found.group(1).strip("\n")
    elif sections is not None:
        starts = [m.start() for m in re.finditer(r"^## ", text, flags=re.MULTILINE)]
        if len(starts) > sections:
            text = text[: starts[sections]].rstrip("\n")
    return re.sub(r"^## ", "### ", text, flags=re.MULTILINE) + "\n"


def render(markdown: str, root: Path = REPO) -> str:
    """``markdown`` with every include block refreshed from its file."""
    return BLOCK.sub(lambda m: m["open"] + _expected(m, root) + m["close"], markdown)


def _expected(match: re.Match, root: Path) -> str:
    sections = int(match["sections"]) if match["sections"] else None
    return included_text(root / match["path"], sections, match["section"])


def stale_blocks(markdown: str, root: Path = REPO) -> list[str]:
    """Paths of the include blocks whose body differs from what :func:`render` would write."""
    return [m["path"] for m in BLOCK.finditer(markdown) if m["body"] != _expected(m, root)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``optical-lab report readme``."""
    parser.add_argument(
        "files",
        nargs="*",
        default=list(DEFAULT_FILES),
        help="markdown files (default: " + ", ".join(DEFAULT_FILES) + ")",
    )
    parser.add_argument("--check", action="store_true", help="only report stale blocks; exit 1 if any")


def main(args: argparse.Namespace) -> int:
    """Rewrite the include blocks of ``args.files`` (``--check``: list the stale ones); the exit status."""
    status = 0
    for name in args.files:
        path = REPO / name if not Path(name).is_absolute() else Path(name)
        text = path.read_text(encoding="utf-8")
        if args.check:
            for stale in stale_blocks(text):
                print(f"{name}: block including {stale} is stale; run optical-lab report readme")
                status = 1
        else:
            new = render(text)
            if new != text:
                path.write_text(new, encoding="utf-8")
                print(f"updated {name}")
    return status


if __name__ == "__main__":
    sys.exit(run_module(add_arguments, main, "python -m optical_lab.reports.readme"))
