"""Hardware choices of ``methods/runtime.py``, with faked CPU flags and load readings."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest
import torch

from optical_lab.methods import runtime
from optical_lab.methods.runtime import CpuReading, auto_threads, others_load, resolve_mixed_precision, set_threads

AVX2_ONLY = frozenset("fpu sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma f16c bmi2".split())
AVX512_BF16 = AVX2_ONLY | {"avx512f", "avx512bw", "avx512_vnni", "avx512_bf16"}
AMX = AVX512_BF16 | {"amx_tile", "amx_bf16", "amx_int8"}


@pytest.mark.parametrize(
    "flags, expected",
    [(AVX2_ONLY, "no"), (AVX2_ONLY | {"avx512f"}, "no"), (AVX512_BF16, "bf16"), (AMX, "bf16"), (frozenset(), "no")],
)
def test_auto_precision_follows_native_bf16(monkeypatch, flags, expected):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)  # (a cap is tested below)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtime, "cpu_flags", lambda: flags)
    assert resolve_mixed_precision("auto") == expected
    assert resolve_mixed_precision("no") == "no" and resolve_mixed_precision("bf16") == "bf16"


@pytest.mark.parametrize(
    "isa, expected",
    [("AVX2", False), ("avx512_core", False), ("AVX512_CORE_BF16", True), ("AVX512_CORE_AMX", True), ("", True)],
)
def test_a_onednn_isa_cap_below_bf16_means_no_native_bf16(monkeypatch, isa, expected):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
    assert runtime.cpu_has_bf16(AVX512_BF16) is expected
    assert runtime.cpu_has_bf16(AVX2_ONLY) is False


def test_cpu_flags_are_whole_words():
    # "avx512_bf16" must be a flag of its own, not a substring of another one
    assert not runtime.cpu_has_bf16(frozenset({"xavx512_bf16x"}))
    assert isinstance(runtime.cpu_flags(), frozenset)


@pytest.fixture
def two_cores(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(runtime, "_last_reading", [None])
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _fake(monkeypatch, readings, load):
    it = iter(readings)
    monkeypatch.setattr(runtime, "cpu_reading", lambda: next(it))
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))


def test_own_load_does_not_pin_an_idle_machine_to_one_thread(two_cores, monkeypatch):
    # the previous cell kept both cores busy itself (plus a tokenizer thread): load average 2.6;
    # the old rule (load - own torch threads = 2.6 - 2 = 0.6 "others") chose 1 thread
    _fake(monkeypatch, [CpuReading(0.0, 100.0, 5.0), CpuReading(30.0, 160.0, 65.0)], load=2.6)
    assert auto_threads(own=2) == 1  # the fallback's failure this replaces
    assert set_threads(0, own=2) == 1  # first call: no earlier reading, load-average fallback
    assert set_threads(0, own=2) == 2  # 60 busy core-seconds in 30 s, all of them ours: others 0
    assert torch.get_num_threads() == 2


def test_other_jobs_still_get_their_core(two_cores, monkeypatch):
    # 30 s in which the machine was busy 55 core-seconds and this process 25: others used ~1 core
    _fake(monkeypatch, [CpuReading(0.0, 0.0, 0.0), CpuReading(30.0, 55.0, 25.0)], load=2.0)
    set_threads(0)
    assert set_threads(0) == 1
    assert others_load(CpuReading(0.0, 0.0, 0.0), CpuReading(30.0, 55.0, 25.0)) == pytest.approx(1.0)


def test_fallbacks_and_explicit_threads(two_cores, monkeypatch):
    _fake(monkeypatch, [None, None, CpuReading(0.0, 0, 0), CpuReading(0.5, 1.0, 0.0)], load=0.1)
    assert set_threads(0) == 2  # idle machine, no /proc: load average
    assert set_threads(1) == 1  # explicit
    set_threads(0)
    assert set_threads(0) == 2  # readings 0.5 s apart: too short to measure, load average again
    assert others_load(CpuReading(0.0, 0, 0), CpuReading(0.5, 1.0, 0.0)) is None
    monkeypatch.setattr(os, "getloadavg", lambda: (2.0, 2.0, 2.0))
    assert auto_threads(own=0) == 1 and auto_threads(own=2) == 2


def test_real_reading_is_consistent():
    reading = runtime.cpu_reading()
    if reading is None:
        pytest.skip("no /proc/stat")
    assert reading.busy >= 0 and reading.own >= 0


FAULTS_SCRIPT = """
import resource, sys, torch
# what `optical-lab compare` has loaded when it trains (the command modules; optical_lab.methods loads lazily):
# with torch alone the heap's layout differs, and the reuse below is not what a training process sees
import optical_lab.experiments.runner
from optical_lab.methods.runtime import allocator_description, keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
def step():  # what a training step does with a large gradient: allocate, touch every page, free
    x = torch.empty(64 * 2**20 // 4); x.fill_(1.0); del x
for _ in range(3):  # the heap settles (one re-fault may come while it does)
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    step()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, "|", allocator_description())
"""


def run_faults_script(mode: str, **env: str) -> tuple[bool, int, str]:
    out = subprocess.run(
        [sys.executable, "-c", FAULTS_SCRIPT, mode],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    )
    numbers, description = out.stdout.split("|")
    kept, faults = numbers.split()
    return kept == "True", int(faults), description.strip()


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_keep_freed_memory_removes_the_page_faults_of_reallocating():
    """With glibc's default, a freed 64 MB block is unmapped and the next one faults its pages in again
    (16,384 pages of 4 KiB, fewer with transparent huge pages); after keep_freed_memory() the block is
    reused (next to no faults once the heap has settled). Both sides are measured, in fresh processes. The kept
    side is the fewest faults of up to 3 processes: about one fresh process in six (measured on a 2-core EPYC)
    lays its heap out so that two of the three blocks are mapped anew (32,768 faults) — the default always does."""
    kept_default, faults_default, described_default = run_faults_script("default")
    runs = []
    for _ in range(3):
        runs.append(run_faults_script("keep"))
        if runs[-1][1] * 10 < faults_default:
            break
    kept, faults_kept, described = min(runs, key=lambda run: run[1])
    if not kept:
        pytest.skip("this glibc refused the mallopt settings")
    assert not kept_default and "default" in described_default and "keeps freed memory" in described
    assert faults_default >= 3 * 16  # at least one fault per 2 MiB huge page of every step
    assert faults_kept * 10 < faults_default


def test_keep_freed_memory_opt_out():
    kept, _, described = run_faults_script("keep", OPTICAL_LAB_MALLOC="default")
    assert kept is False and "default" in described
