"""README numbers are generated from results files, and stay in sync with them."""

from pathlib import Path

import pytest

from optical_lab.reports.readme import DEFAULT_FILES, REPO, render, stale_blocks

SUMMARY = "## Winner\n\n| a |\n|---|\n| 1 |\n\n## Second\n\ntext\n\n## Third\n\nmore\n"


def _doc(body: str) -> str:
    return f"# Title\n\n<!-- include res/summary.md sections=2 -->\n{body}<!-- end include -->\n\nafter\n"


def test_render_cuts_sections_and_demotes_headings(tmp_path: Path):
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "summary.md").write_text(SUMMARY)
    out = render(_doc("old numbers\n"), root=tmp_path)
    assert "### Winner" in out and "### Second" in out and "Third" not in out
    assert "old numbers" not in out and out.endswith("<!-- end include -->\n\nafter\n")
    assert stale_blocks(out, root=tmp_path) == []
    # a changed result makes the block stale
    (tmp_path / "res" / "summary.md").write_text(SUMMARY.replace("| 1 |", "| 2 |"))
    assert stale_blocks(out, root=tmp_path) == ["res/summary.md"]


def test_render_picks_one_named_section(tmp_path: Path):
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "summary.md").write_text("# Report\n\n## Second\n\ntext\n\n## Third\n\nmore\n")
    doc = '<!-- include res/summary.md section="Second" -->\n<!-- end include -->\n'
    assert (
        render(doc, root=tmp_path) == '<!-- include res/summary.md section="Second" -->\ntext\n<!-- end include -->\n'
    )


@pytest.mark.parametrize("name", DEFAULT_FILES)
def test_markdown_tables_match_committed_results(name: str):
    text = (REPO / name).read_text(encoding="utf-8")
    assert "<!-- include " in text  # the result tables are generated blocks
    assert stale_blocks(text) == [], "run: optical-lab report readme"
