"""`optical-lab evaluate`: zero-shot evaluation — the teacher on both sides — on any registered task.

``--task ntrex`` (default: known-item CLIR + sentence retrieval), ``ntrex-sentence``, ``qald``, or
``trec --topics T --qrels Q --docs D`` (a user's own collection); every language's whole
evaluation set is scored (no folds: nothing is trained). Results land in
``results/evaluate-<task>-<timestamp>/``: ``config.json``, ``environment.json`` (versions and
provenance), ``metrics.csv`` / ``metrics.md`` (one row per language: the main sub-task's metrics,
then ``<sub-task>_<metric>`` for the others) and, per language, each sub-task's TREC run, topics,
qrels and per-query CSV. Trained methods: ``optical-lab compare``.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..data.errors import DataError
from ..data.languages import parse_langs
from ..io import write_json
from ..models.encoder import Encoder
from ..models.registry import check_model_name
from ..tasks.base import TaskFold, save_results
from ..tasks.registry import TASKS, get_task
from .compare import add_task_options, task_options_from_args
from .records import new_results_dir, record_run

DEFAULT_LANGS = "eng,fra,deu,swa,hau,yor,som,zul,fil,amh"


@dataclass
class ZeroShotConfig:
    langs: list[str] = field(default_factory=lambda: parse_langs(DEFAULT_LANGS))
    model: str = "minilm"
    max_length: int = 256
    task: str = "ntrex"
    task_options: dict[str, Any] = field(default_factory=dict)
    method: str = "zero-shot"

    def __post_init__(self) -> None:
        check_zero_shot_settings(self.langs, self.model, self.max_length)


def check_zero_shot_settings(langs: list[str], model: str, max_length: int) -> None:
    """Refuse settings no zero-shot run can use, before the model is loaded (``evaluate`` and ``qald``)."""
    if not langs:
        raise DataError("no language to evaluate", fix="e.g. --langs hau,swa")
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 3:
        raise DataError(f"max_length = {max_length!r}: must be an integer >= 3", fix="e.g. --max-length 256")
    check_model_name(model)


def run_zero_shot(config: ZeroShotConfig, out_root: str = "results", progress: bool = True) -> pd.DataFrame:
    task = get_task(config.task, **config.task_options)
    folder = new_results_dir(f"evaluate-{task.name}", out_root)
    teacher = Encoder.load(config.model, max_length=config.max_length)
    record_run(folder, config, [f for lang in config.langs for f in task.data_files(lang)], teacher.source)
    everything = TaskFold(0, None, None, None)  # eval_key None: every evaluation item of the language
    rows = []
    for lang in config.langs:
        results = task.evaluate(lang, everything, teacher, teacher)
        save_results(folder / lang, results, tag=f"zero-shot-{config.model}", compress=False, inputs=True)
        main, *others = results
        row = {"lang": lang, **results[main].summary}
        for sub in others:
            row.update({f"{sub}_{k}": v for k, v in results[sub].summary.items()})
        rows.append(row)
        if progress:
            print(f"{lang}: " + "  ".join(f"{k}={v:.3f}" for k, v in row.items() if k != "lang"), flush=True)
    table = pd.DataFrame(rows).set_index("lang")
    table.to_csv(folder / "metrics.csv")
    (folder / "metrics.md").write_text(table.to_markdown(floatfmt=".3f") + "\n", encoding="utf-8")
    write_json({"results_dir": str(folder)}, folder / "done.json")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"\nresults: {folder}")
    return table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", default="zero-shot", choices=["zero-shot"], help="only zero-shot here; trained methods: `optical-lab compare`")
    parser.add_argument("--task", default="ntrex", choices=list(TASKS), help="evaluation task (optical_lab/tasks/)")
    add_task_options(parser)
    parser.add_argument("--langs", default=DEFAULT_LANGS, help="comma-separated ISO 639-3 codes (eng = monolingual ceiling)")
    parser.add_argument("--model", default="minilm", help="registry name (minilm, me5-small), HF id or local path")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--no-sentence-task", action="store_true", help="ntrex: known-item CLIR only")
    parser.add_argument("--out", default="results")


def main(args: argparse.Namespace) -> None:
    options = task_options_from_args(args)
    if args.no_sentence_task and args.task == "ntrex":
        options["sentence_task"] = False
    config = ZeroShotConfig(parse_langs(args.langs), args.model, args.max_length, args.task, options)
    run_zero_shot(config, args.out)
