"""``optical-lab test-calibration``: run :mod:`.test_calibration` on the primary tests of protocol v3 and write
``docs/v3_test_calibration.md`` (and its JSON record beside it) as the results land, one design at a time."""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..evaluation.verdict import ALPHA, POWER, REFERENCE
from ..io import write_json, write_text
from .command import run_module
from .test_calibration import CONTRASTS, FAMILY, MODELS, Design, calibrate, designs


# ----------------------------------------------------------------------------------------- the document
def _pm(row: Mapping, key: str, digits: int = 3) -> str:
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f} ± {row[key + '_se']:.{digits}f}"


def wilson(share: float, n: int, z: float = 2.0) -> tuple[float, float]:
    """Wilson score interval of a binomial share (z = 2: about 95 %); unlike ± z·SE it is not empty at 0 or 1."""
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _judge(share: float, low: float, high: float) -> str:
    return "below" if share < low else ("above" if share > high else "not clearly outside")


def implied_level(ratio: float, alpha: float = ALPHA) -> float:
    r"""The two-sided level a normal test at ``alpha`` has when its sd is ``ratio`` x the true one:
    :math:`2\Phi(-z_{1-\alpha/2}\,r)`."""
    return float(2 * stats.norm.sf(stats.norm.isf(alpha / 2) * ratio))


def verdict(rows: Sequence[Mapping]) -> list[str]:
    """Plain statements of the brief's criteria per row: the type-I error at α against [0.03, 0.07] and the power
    at the test's own ``mde`` against [0.8, 0.9], "clearly" outside = the Wilson interval (z = 2) misses the range;
    beside the type-I error, the level its sd ratio implies under normality (:func:`implied_level`; the ratio's MC
    error is far smaller than the type-I error's)."""
    out = []
    for r in rows:
        low, high = wilson(r["type1"], r["sims"])
        mc = "clearly below" if high < 0.03 else ("clearly above" if low > 0.07 else "not clearly outside")
        implied = implied_level(r["sd_ratio"])
        text = (
            f"* {r['endpoint']}, {r['contrast']} ({r['model']}, seed stage `{r['seed_stage']}`): type-I "
            f"{_pm(r, 'type1')} at α = 0.05 ({mc} [0.03, 0.07] given its MC error); sd ratio {_pm(r, 'sd_ratio')}, "
            f"a level of about {implied:.3f} under normality ({_judge(implied, 0.03, 0.07)} [0.03, 0.07]); "
            f"coverage {_pm(r, 'coverage')}"
        )
        if "power_own" in r:
            lo, hi = wilson(r["power_own"], r["sims"])
            judged = (
                "clearly below 0.8"
                if hi < 0.8
                else ("clearly above 0.9" if lo > 0.9 else "not clearly outside [0.8, 0.9]")
            )
            text += f"; power at its own mde {_pm(r, 'power_own')} ({judged})"
            text += f"; power at the projected MDE {_pm(r, 'power_projected')}"
        out.append(text + ".")
    return out


def in_brief(rows: Sequence[Mapping], conservative: float = 1.05) -> str:
    """The registered test's answer in one line, from its rows: the range of its type-I error at α (and whether
    any is clearly above 0.07), of its sd ratio (how many exceed ``conservative``: a conservative test) and of its
    power at its own reported mde."""
    registered = [r for r in rows if r["registered"]]
    if not registered:
        return "**In brief**: no row of the registered test in these records."

    def span(key: str) -> str:
        values = [r[key] for r in registered if key in r]
        return f"{min(values):.3f}-{max(values):.3f}" if values else "not measured"

    above = sum(wilson(r["type1"], r["sims"])[0] > 0.07 for r in registered)
    wide = sum(r["sd_ratio"] > conservative for r in registered)
    return (
        f"**In brief** (the registered test, {len(registered)} simulated tests): type-I error at α = {ALPHA} "
        f"{span('type1')} ({above} clearly above 0.07); bootstrap sd / true sd {span('sd_ratio')}, above "
        f"{conservative} (conservative) in {wide} of {len(registered)}; power at its own reported mde "
        f"{span('power_own')} (target {POWER})."
    )


def _run_line(meta: Mapping) -> str:
    """One run: its command, size, time and the rows its record holds (a run stopped early holds fewer)."""
    held = pd.Series([f"{r['model']} {r['endpoint']}, {r['contrast']}" for r in meta["rows"] if r["registered"]])
    return (
        f"* `{meta['command']}`: {meta['sims']} simulated data sets per test, B = {meta['resamples']:,} bootstrap "
        f"draws each, data seed {meta['seed']}, bootstrap seed 0; {meta['seconds']:.0f} s on {meta['cpu']} "
        f"(shared machine: the time is indicative only). Its record holds: {'; '.join(held) or 'nothing yet'}."
    )


def document(
    rows: Sequence[Mapping], tests: Sequence[Design], runs: Sequence[Mapping], rendered: str | None = None
) -> str:
    """The markdown document of one or more runs (``runs``: their JSON records' metadata, ``rows``: all rows)."""
    frame = pd.DataFrame(rows)
    again = f" (this text rendered from their JSON records by `{rendered}`)" if rendered else ""
    lines = [
        "# Calibration of protocol v3's registered primary test (simulation)",
        "",
        f"Generated by the command(s) below{again} from the committed v2 per-query files; never edited by hand. "
        "Method, model and references: the module docstring of `optical_lab/experiments/test_calibration.py`. "
        "No v3 evaluation number exists or is used: every data set is simulated.",
        "",
        in_brief(rows),
        "",
        *[_run_line(meta) for meta in runs],
        "",
        f"The registered B is {runs[0]['registered_resamples']:,}; fewer draws add a little Monte Carlo noise to "
        "each p and CI end.",
        "",
        "**The test** is `evaluation.stats.hierarchical_draws` + `bootstrap_test`, as `reports/v3.run_tests` calls "
        "them; `seed_stage` `rows` is the registered test, `effects` the explicit option of `hierarchical_draws` "
        "(the seed stage resamples each arm's method-of-moments seed effects, with the k/(k−1) correction, and "
        "the queries are resampled once from the seed-averaged differences), run on the same data sets. "
        f"Type-I error at α = {ALPHA} and at α/m = {ALPHA / FAMILY} (m = {FAMILY}, Holm's first step); power: "
        f"p < α/m with the right sign (the level the MDE is stated at, power {POWER}). ± = one Monte Carlo SE.",
        "",
        "## Designs (components measured in v2 by `experiments/power.py`, 5 seeds per arm)",
        "",
        _designs(tests),
        "",
        '## Verdict ("clearly": the Wilson interval, z = 2, misses the range)',
        "",
        "Registered test:",
        "",
        *verdict([r for r in rows if r["registered"]]),
        "",
        'Option `seed_stage="effects"` (not registered):',
        "",
        *verdict([r for r in rows if not r["registered"]]),
        "",
    ]
    gaussian_rows = frame[frame.model == "gaussian"] if len(frame) else frame
    if len(gaussian_rows):
        lines += _gaussian_sections(gaussian_rows, tests)
    binary_rows = frame[frame.model == "binary"] if len(frame) else frame
    if len(binary_rows):
        lines += _binary_section(binary_rows)
    return "\n".join(lines)


def _designs(tests: Sequence[Design]) -> str:
    return pd.DataFrame(
        [
            {
                "endpoint": d.endpoint,
                "contrast": f"{REFERENCE} − {d.contrast}",
                "queries": " / ".join(f"{lang} {n}" for lang, n in d.queries.items()),
                "σ²_query": d.sigma2_query,
                "σ²_seed": d.sigma2_seed,
                "σ²_resid": d.sigma2_resid,
                "true sd of T": d.true_sd(),
                "projected MDE (m=4)": d.projected_mde,
                "mean v2 score": d.mean_score,
            }
            for d in tests
        ]
    ).to_markdown(index=False, floatfmt=".5f")


def _gaussian_sections(frame: pd.DataFrame, tests: Sequence[Design]) -> list[str]:
    return [
        "## Gaussian model: level, coverage, sd",
        "",
        _table(
            _with_theory(frame, tests), ["type1", "type1_m", "coverage", "sd_ratio"], ["true_sd", "theory_sd_ratio"]
        ),
        "",
        "`sd ratio` = mean bootstrap sd / the statistic's true sd (analytic, module doc); `theory_sd_ratio` = the "
        "ratio the variance formula of `stats.hierarchical_draws`'s docstring predicts for that seed stage "
        "(`Design.bootstrap_sd`). A ratio r above 1 makes a two-sided test at α reject about "
        "2Φ(−z₁₋α/₂·r) of the time under the null and its `mde` r times the projected one; below 1 the reverse.",
        "",
        "## Gaussian model: power (p < α/m, right sign)",
        "",
        _table(frame, ["mde", "power_projected", "power_own"], ["delta_projected"], digits=4),
        "",
        "`power_projected`: at a true difference equal to the projected MDE of `docs/v3_power.md` for this contrast "
        "(`delta_projected`); `power_own`: at the mean `mde` the test itself reports (`mde`).",
        "",
    ]


def _binary_section(frame: pd.DataFrame) -> list[str]:
    recovered = "; ".join(
        f"{r.contrast}: σ²_query {r.recovered['sigma2_query']:.4f}, σ²_seed {r.recovered['sigma2_seed']:.5f}, "
        f"σ²_resid {r.recovered['sigma2_resid']:.4f}"
        for r in frame[frame.registered].itertuples()
    )
    return [
        "## Non-Gaussian check: binary acc@1 from a latent threshold (null only)",
        "",
        _table(frame, ["type1", "type1_m", "coverage", "sd_ratio"], ["scale"]),
        "",
        "`sd ratio` here = mean bootstrap sd / the sd of the statistic across the data sets (its MC error "
        f"included). Components of the binary differences recovered by `power.components` (target: v2's): {recovered}.",
        "",
    ]


def _with_theory(frame: pd.DataFrame, tests: Sequence[Design]) -> pd.DataFrame:
    by_label = {(d.endpoint, f"{REFERENCE} − {d.contrast}"): d for d in tests}
    theory = [
        by_label[(r.endpoint, r.contrast)].bootstrap_sd(r.seed_stage) / by_label[(r.endpoint, r.contrast)].true_sd()
        for r in frame.itertuples()
    ]
    return frame.assign(theory_sd_ratio=theory)


def _table(frame: pd.DataFrame, measured_keys: Sequence[str], plain: Sequence[str], digits: int = 3) -> str:
    out = frame[["endpoint", "contrast", "seed_stage"]].copy()
    for key in plain:
        out[key] = frame[key].map(lambda v: f"{v:.4f}")
    for key in measured_keys:
        out[key] = [_pm(r, key, digits) for r in frame.to_dict("records")]
    return out.to_markdown(index=False)


# ----------------------------------------------------------------------------------------- the command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``optical-lab test-calibration``."""
    parser.add_argument(
        "results", type=Path, nargs="?", help="a finished v2 grid (its runs/ per-query files): the components"
    )
    parser.add_argument("--sims", type=int, default=1000, help="simulated data sets per test")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap draws per data set")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated data")
    parser.add_argument("--doc", type=Path, help="write the markdown document here (and its JSON beside it)")
    parser.add_argument(
        "--contrasts", default=",".join(CONTRASTS), help="which primary contrasts (OPTICAL − each) to simulate"
    )
    parser.add_argument(
        "--models", default="gaussian,binary", help="which models to simulate (gaussian: level and power; binary: null)"
    )
    parser.add_argument(
        "--render", type=Path, nargs="+", help="only write --doc from these runs' JSON records (no simulation)"
    )


def render(records: Sequence[Path], doc: Path) -> None:
    """Write ``doc`` from runs' JSON records alone (their rows together: e.g. the Gaussian and the binary run)."""
    from ..io import read_json

    metas = [read_json(record) for record in records]
    tests = [Design(**d) for d in metas[0]["designs"]]
    rows = [row for meta in metas for row in meta["rows"]]
    how = "optical-lab test-calibration --render " + " ".join(map(str, records)) + f" --doc {doc}"
    write_text(document(rows, tests, metas, rendered=how) + "\n", doc)


def main(args: argparse.Namespace) -> None:
    """Measure every primary test; print the verdict; write the document and its JSON record when asked."""
    from ..evaluation.stats import N_RESAMPLES
    from ..methods.runtime import cpu_description
    from .per_query import load_per_query
    from .records import git_state

    if args.render:
        if args.doc is None:
            raise ValueError("--render needs --doc (the document to write)")
        return render(args.render, args.doc)
    if args.results is None:
        raise ValueError("name a finished v2 grid (RESULTS), or --render a JSON record")
    if args.sims < 2 or args.resamples < 2:
        raise ValueError("--sims and --resamples must be at least 2")
    contrasts = args.contrasts.split(",")
    if not contrasts or set(contrasts) - set(CONTRASTS):
        raise ValueError(f"--contrasts {args.contrasts!r}: a comma-separated subset of {', '.join(CONTRASTS)}")
    tests = designs(load_per_query(args.results / "runs"), contrasts=contrasts)
    words = sys.argv[sys.argv.index("test-calibration") + 1 :] if "test-calibration" in sys.argv else sys.argv[1:]
    command = " ".join(["optical-lab test-calibration", *words])
    start = time.perf_counter()
    meta = {
        "command": command,
        "sims": args.sims,
        "resamples": args.resamples,
        "registered_resamples": N_RESAMPLES,
        "seed": args.seed,
        "cpu": cpu_description(),
        "git": git_state(),
        "versions": {"numpy": np.__version__, "pandas": pd.__version__},
        "designs": [asdict(d) for d in tests],
    }

    def land(rows: list[dict]) -> None:
        if args.doc:
            meta["seconds"] = time.perf_counter() - start
            write_json({**meta, "rows": rows}, args.doc.with_suffix(".json"))
            write_text(document(rows, tests, [{**meta, "rows": rows}]) + "\n", args.doc)

    models = args.models.split(",")
    if not models or set(models) - set(MODELS):
        raise ValueError(f"--models {args.models!r}: a comma-separated subset of {', '.join(MODELS)}")
    rows = calibrate(tests, args.sims, args.resamples, args.seed, on_row=land, models=models)
    land(rows)
    print("\n".join(verdict(rows)))


if __name__ == "__main__":
    sys.exit(run_module(add_arguments, main, "python -m optical_lab.experiments.test_calibration_cli"))
