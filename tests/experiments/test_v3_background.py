"""scripts/v3_background.sh commits finished, compacted cells as they land (and nothing else), and resumes.

A throw-away git repository holds the script and a stand-in ``make`` that writes cells the way the sweep and the
runner do (done.json, then config.json compacted to config.json.xz), so no training runs here."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FAKE_MAKE = """#!/usr/bin/env bash
# stand-in for make: the sweep's or the grid's cells, as they look once finished (and one still being written)
out=results/v3-minilm
cell() { mkdir -p "$1"; echo '{}' > "$1/done.json"; echo x > "$1/config.json.xz"; }
target=$(printf '%s\\n' "$@" | grep -E '^(sweep-v3-minilm|v3-minilm)$')
case "$target" in
  sweep-v3-minilm)
    cell $out/sweep/optical/lr0.001/ibo; cell $out/sweep/optical/lr0.001/swa
    mkdir -p $out/sweep/optical/lr0.003/yor $out/sweep/.cache/teacher $out/sweep/blobs
    echo '{}' > $out/sweep/optical/lr0.003/yor/done.json; echo '{}' > $out/sweep/optical/lr0.003/yor/config.json
    echo t > $out/sweep/.cache/teacher/x.safetensors; echo b > $out/sweep/blobs/abc.xz
    echo '{}' > $out/sweep/chosen.json; echo lock > $out/sweep/.optical-lab.lock ;;
  v3-minilm)
    cell $out/runs/hau/zero-shot/fold0-seed0; echo '{}' > $out/config.json; echo log > $out/worker2.log ;;
esac
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_background_script_commits_finished_cells_only_and_resumes(tmp_path):
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "v3_background.sh", repo / "scripts")
    shutil.copy(REPO / ".gitignore", repo)
    (repo / "README").write_text("x\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "make").write_text(FAKE_MAKE)
    (bin_dir / "make").chmod(0o755)
    git(repo, "init", "-q")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start")
    (repo / "elsewhere.txt").write_text("staged, not ours\n")
    git(repo, "add", "elsewhere.txt")
    env = os.environ | {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "EVERY": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    run = subprocess.run(["bash", "scripts/v3_background.sh"], cwd=repo, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    committed = set(git(repo, "ls-files", "results").split())
    assert committed == {
        "results/v3-minilm/sweep/optical/lr0.001/ibo/done.json",
        "results/v3-minilm/sweep/optical/lr0.001/ibo/config.json.xz",
        "results/v3-minilm/sweep/optical/lr0.001/swa/done.json",
        "results/v3-minilm/sweep/optical/lr0.001/swa/config.json.xz",
        "results/v3-minilm/sweep/chosen.json",
        "results/v3-minilm/sweep/blobs/abc.xz",
        "results/v3-minilm/runs/hau/zero-shot/fold0-seed0/done.json",
        "results/v3-minilm/runs/hau/zero-shot/fold0-seed0/config.json.xz",
        "results/v3-minilm/config.json",
    }  # not the cell whose config.json is not compacted yet, nor the lock, the cache or a worker's log
    messages = git(repo, "log", "--format=%s").splitlines()
    assert any("sweep/optical/lr0.001/ibo" in m and "sweep/optical/lr0.001/swa" in m for m in messages)
    assert any("runs/hau/zero-shot/fold0-seed0" in m for m in messages)
    assert "elsewhere.txt" not in git(repo, "log", "--name-only", "--format=")  # only results paths
    assert "elsewhere.txt" in git(repo, "diff", "--cached", "--name-only")  # still staged, untouched
    # a re-run with nothing new finished commits nothing
    head = git(repo, "rev-parse", "HEAD")
    run = subprocess.run(["bash", "scripts/v3_background.sh"], cwd=repo, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert git(repo, "rev-parse", "HEAD") == head
