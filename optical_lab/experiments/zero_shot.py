"""`optical-lab evaluate --method zero-shot`: the teacher on both sides, every language, all documents."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import pandas as pd

from ..data.languages import parse_langs
from ..data.ntrex import load_ntrex
from ..models.encoder import Encoder
from .evaluate import evaluate_ntrex, save_task_results
from .records import new_results_dir, record_run, write_json

DEFAULT_LANGS = "eng,fra,deu,swa,hau,yor,som,zul,fil,amh"


@dataclass
class ZeroShotConfig:
    langs: list[str] = field(default_factory=lambda: parse_langs(DEFAULT_LANGS))
    model: str = "minilm"
    max_length: int = 256
    sentence_task: bool = True
    method: str = "zero-shot"


def run_zero_shot(config: ZeroShotConfig, out_root: str = "results", progress: bool = True) -> pd.DataFrame:
    folder = new_results_dir("evaluate-zero-shot", out_root)
    record_run(folder, config)
    teacher = Encoder.load(config.model, max_length=config.max_length)
    rows = []
    for lang in config.langs:
        corpus = load_ntrex(lang)
        results = evaluate_ntrex(corpus, teacher, teacher, sentence_task=config.sentence_task, progress=progress)
        save_task_results(results, corpus, folder / lang, tag=f"zero-shot-{config.model}")
        row = {"lang": lang, **results["clir"].summary}
        if "sentence" in results:
            row.update({f"sent_{k}": v for k, v in results["sentence"].summary.items()})
        rows.append(row)
    table = pd.DataFrame(rows).set_index("lang")
    table.to_csv(folder / "metrics.csv")
    (folder / "metrics.md").write_text(table.to_markdown(floatfmt=".3f") + "\n", encoding="utf-8")
    write_json({"results_dir": str(folder)}, folder / "done.json")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"\nresults: {folder}")
    return table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", default="zero-shot", choices=["zero-shot"], help="only zero-shot here; trained methods: `optical-lab compare`")
    parser.add_argument("--langs", default=DEFAULT_LANGS, help="comma-separated ISO 639-3 codes (eng = monolingual ceiling)")
    parser.add_argument("--model", default="minilm", help="registry name (minilm, me5-small), HF id or local path")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--no-sentence-task", action="store_true")
    parser.add_argument("--out", default="results")


def main(args: argparse.Namespace) -> None:
    config = ZeroShotConfig(parse_langs(args.langs), args.model, args.max_length, not args.no_sentence_task)
    run_zero_shot(config, args.out)
