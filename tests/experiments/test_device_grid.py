"""The GPU kit (scripts/device_grid.sh) on a two-cell grid, the device call mocked: the call's command runs here,
on the CPU, in a folder holding only what a call would carry; only finished cells come back, and they resume."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "device_grid.sh"
OUTDIR = "results/smoke"


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "PY": sys.executable, "OPTICAL_LAB_SMALL": "1", **extra}


def fake_device_run(command: list[str], checkout: Path, out: Path, **env: str) -> subprocess.CompletedProcess:
    """The device tool, mocked: the command runs in ``checkout`` (the carried tree) with an empty ``$OUT``."""
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        command, cwd=checkout, env=_env(OUT=str(out), **env), capture_output=True, text=True, timeout=1800
    )


@pytest.mark.slow
def test_a_named_grid_runs_on_the_mocked_device_and_its_finished_cells_land_and_resume(tmp_path):
    kit = tmp_path / "kit"
    made = subprocess.run(
        ["bash", str(SCRIPT), "args"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=_env(GRID="GRID_SMOKE", OUTDIR=OUTDIR, KIT=str(kit)),
    )
    assert made.returncode == 0, made.stdout + made.stderr
    assert "a call carries" in made.stdout and (kit / "args").read_text().startswith("--langs hau")
    device = tmp_path / "device"
    device.mkdir()
    ran = fake_device_run(
        ["bash", str(SCRIPT), "run"], device, tmp_path / "out1", KIT=str(kit), JOBS="2", THREADS="1", BUDGET="1500"
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    with tarfile.open(tmp_path / "out1" / "results.tgz") as tar:
        names = tar.getnames()
    finished = sorted(n for n in names if n.endswith("/done.json") and "/runs/" in n)
    assert finished == [
        f"{OUTDIR}/runs/hau/optical/fold0-seed0/done.json",
        f"{OUTDIR}/runs/hau/zero-shot/fold0-seed0/done.json",
    ]
    assert not any(n.endswith((".pt", ".optical-lab.lock")) or "/.cache/" in n for n in names)
    assert f"{OUTDIR}/runs/hau/optical/fold0-seed0/train_log.jsonl.cols.xz" in names  # compacted as it finished
    # here: the finished cells land in the checkout, then a second call serves them as they are (resume)
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    landed = subprocess.run(
        ["bash", str(SCRIPT), "land", str(tmp_path / "out1")],
        cwd=checkout,
        capture_output=True,
        text=True,
        env=_env(KIT=str(kit)),
    )
    assert landed.returncode == 0, landed.stdout + landed.stderr
    done = sorted((checkout / OUTDIR).glob("runs/*/*/*/done.json"))
    assert len(done) == 2
    before = {p: p.read_bytes() for p in done}
    again = fake_device_run(
        ["bash", str(SCRIPT), "run"], checkout, tmp_path / "out2", KIT=str(kit), JOBS="2", THREADS="1", BUDGET="1500"
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert {p: p.read_bytes() for p in done} == before  # served from what was committed, not recomputed
    assert "cached" in (tmp_path / "out2" / "grid.log").read_text()
