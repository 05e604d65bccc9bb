"""`optical-lab evaluate`: score the zero-shot teacher, or any saved student, on the evaluation suite.

``--tasks ntrex-clir,ntrex-sentences,flores-sentences,sib-topics`` (``suite``, the default, is
those four; any registered task works, e.g. ``qald`` or ``trec --topics T --qrels Q --docs D``)
over ``--langs`` (``all`` = every language of the data directory). Each task evaluates every
language it has and skips the others with one line saying why (``skipped.csv``); every
language's whole evaluation set is scored (no folds: nothing is trained here).

Queries (and the topic classifier's English training embeddings) are encoded by the teacher
``--model``; documents by ``--student PATH`` (a folder written by ``Encoder.save``, e.g. by
``optical-lab compare --save-student``) or, without it, by the teacher too (zero-shot). A saved
student names the teacher it was distilled from, which is then the default ``--model``.

The results folder (``--out``; default ``results/evaluate-<tasks>-<timestamp>``) receives
``config.json``, ``environment.json`` (versions, CPU flags, provenance: data-file and model
hashes), per task ``<task>.csv`` / ``<task>.md`` (one row per language: the main sub-task's
metrics, then ``<sub-task>_<metric>`` for the others), per task and language the sub-tasks' TREC
runs and per-query CSVs (``<task>/<lang>/``), and ``summary.md`` (every table, the skipped
languages, and the wall time when ``time_v.txt`` from ``/usr/bin/time -v`` lies beside it;
``optical-lab report summary FOLDER`` re-renders it). Trained methods:
``optical-lab compare``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..data.errors import DataError
from ..data.languages import known_languages, parse_langs
from ..io import open_stored, stored_exists, write_csv, write_json, write_text
from ..methods.runtime import shown_flags
from ..models.registry import DEFAULT_MODEL, ENCODER_FILE, add_backbone_options, backbone_overrides, check_model_name
from ..tasks.base import TaskFold, TaskResult, save_results
from ..tasks.registry import SUITE, get_task, parse_tasks
from .cache import ResultFolder, fingerprint_of
from .command import deprecated_flag
from .compare import add_task_options, task_options_from_args
from .records import environment, folder_digest, new_results_dir, provenance

if TYPE_CHECKING:
    from ..models.encoder import Encoder

DEFAULT_LANGS = "eng,fra,deu,swa,hau,yor,som,zul,fil,amh"


@dataclass
class EvaluateConfig:
    """What decides the numbers of an evaluation (saved as ``config.json``); run it with :func:`run_evaluation`.

    >>> from optical_lab import EvaluateConfig
    >>> config = EvaluateConfig(langs=["hau", "swa"], tasks=["ntrex-clir"])
    >>> config.method, config.model
    ('zero-shot', 'minilm')
    """

    langs: list[str] = field(default_factory=lambda: parse_langs(DEFAULT_LANGS))
    tasks: list[str] = field(default_factory=lambda: list(SUITE))
    model: str = DEFAULT_MODEL
    student: str | None = None  # a saved student's folder; None = zero-shot (the teacher on both sides)
    max_length: int = 256
    task_options: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 32
    backbone: dict[str, str] = field(default_factory=dict)  # --pooling/--query-prefix/--document-prefix (the teacher)

    @property
    def method(self) -> str:
        return "zero-shot" if self.student is None else "student"

    def __post_init__(self) -> None:
        check_zero_shot_settings(self.langs, self.model, self.max_length)


def check_zero_shot_settings(langs: list[str], model: str, max_length: int) -> None:
    """Refuse settings no zero-shot run can use, before the model is loaded (``evaluate`` and ``qald``)."""
    if not langs:
        raise DataError("no language to evaluate", fix="e.g. --langs hau,swa")
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 3:
        raise DataError(f"max_length = {max_length!r}: must be an integer >= 3", fix="e.g. --max-length 256")
    check_model_name(model)


def student_teacher(student: str | None) -> str | None:
    """The teacher a saved student records (``optical_lab_encoder.json``), if any."""
    if student is None:
        return None
    folder = Path(student)
    if not (folder / "config.json").is_file():
        raise DataError(
            f"--student {student} is not a saved encoder folder (no config.json)",
            path=folder,
            fix="pass a folder written by Encoder.save, e.g. <compare out>/runs/<lang>/<method>/"
            "<fold-seed>/student from `optical-lab compare --save-student`",
        )
    info = folder / ENCODER_FILE
    return json.loads(info.read_text(encoding="utf-8")).get("teacher") if info.is_file() else None


def data_languages() -> list[str]:
    """``--langs all``: every language some dataset folder holds files for (not NTREX's upstream list)."""
    return sorted(code for code, entry in known_languages().items() if entry.datasets)


def task_table(results_by_lang: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per language: the first sub-task's metrics, then ``<sub-task>_<metric>`` for the others."""
    rows = []
    for lang, results in results_by_lang.items():
        main, *others = results
        row = {"lang": lang, **results[main].summary}
        for sub in others:
            row.update({f"{sub}_{k}": v for k, v in results[sub].summary.items()})
        rows.append(row)
    return pd.DataFrame(rows).set_index("lang")


def evaluate_student(
    student: Encoder, task: str, lang: str, teacher: Encoder | None = None, **task_options
) -> dict[str, Any]:
    """Score ``student`` (documents) on every evaluation item of ``task`` in ``lang``, queries encoded by
    ``teacher`` (default: the student itself, i.e. zero-shot). Returns sub-task -> ``TaskResult``
    (``.summary``: metric -> mean, ``.per_query``: a DataFrame). Writes nothing (:func:`run_evaluation`
    writes a results folder).

    >>> import pathlib, tempfile
    >>> from optical_lab import Encoder, evaluate_student
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "topics.tsv").write_text("q1\\tWhere is the market?\\nq2\\tGood morning, my friend\\n")
    >>> _ = (folder / "qrels.txt").write_text("q1 0 d1 1\\nq2 0 d2 1\\n")
    >>> _ = (folder / "docs.tsv").write_text("d1\\tSoko liko wapi?\\nd2\\tHabari ya asubuhi, rafiki yangu\\n")
    >>> teacher = Encoder.load("minilm", device="cpu")
    >>> results = evaluate_student(teacher, "trec", "swa", topics=str(folder / "topics.tsv"),
    ...                            qrels=str(folder / "qrels.txt"), docs=str(folder / "docs.tsv"))
    >>> sorted(results["trec"].summary), len(results["trec"].per_query)
    (['MAP', 'MRR@10', 'R@1', 'R@10', 'R@100', 'nDCG@10'], 2)
    """
    everything = TaskFold(0, None, None, None)  # eval_key None: every evaluation item of the language
    return get_task(task, **task_options).evaluate(lang, everything, teacher or student, student)


def run_evaluation(
    config: EvaluateConfig, out: str | Path | None = None, progress: bool = True
) -> dict[str, pd.DataFrame]:
    """Evaluate every (task, language) pair the data allows; write the folder; return task -> table.

    Everything that can be refused (unknown task option, no task having any language, a folder
    already holding finished results or in use by another run, a missing model) is refused before
    anything is written. A run that crashed (``config.json`` but no ``done.json``) is redone by the
    same command.

    >>> import contextlib, io, pathlib, tempfile
    >>> from optical_lab import EvaluateConfig, run_evaluation
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "topics.tsv").write_text("q1\\tWhere is the market?\\nq2\\tGood morning, my friend\\n")
    >>> _ = (folder / "qrels.txt").write_text("q1 0 d1 1\\nq2 0 d2 1\\n")
    >>> _ = (folder / "docs.tsv").write_text("d1\\tSoko liko wapi?\\nd2\\tHabari ya asubuhi, rafiki yangu\\n")
    >>> names = {"topics": "topics.tsv", "qrels": "qrels.txt", "docs": "docs.tsv"}
    >>> files = {option: str(folder / name) for option, name in names.items()}
    >>> config = EvaluateConfig(langs=["swa"], tasks=["trec"], task_options=files)
    >>> with contextlib.redirect_stdout(io.StringIO()):
    ...     tables = run_evaluation(config, folder / "results", progress=False)
    >>> list(tables["trec"].columns[:3]), sorted(p.name for p in (folder / "results").glob("*.json"))
    (['MRR@10', 'nDCG@10', 'MAP'], ['config.json', 'done.json', 'environment.json'])
    """
    start = time.perf_counter()
    tasks = {name: get_task(name, **config.task_options) for name in config.tasks}
    todo: dict[str, list[str]] = {}
    skipped = []
    for name, task in tasks.items():
        for lang in config.langs:
            reason = task.unavailable(lang)
            if reason:
                skipped.append({"task": name, "lang": lang, "reason": reason})
            else:
                todo.setdefault(name, []).append(lang)
    everything = TaskFold(0, None, None, None)  # eval_key None: every evaluation item of the language
    for name, langs in todo.items():
        for lang in langs:
            tasks[name].eval_texts(lang, everything)  # reads and checks the data now, before anything is written
    if not todo:
        raise DataError(
            f"none of the tasks {', '.join(tasks)} has any of the languages {', '.join(config.langs)}",
            fix="`optical-lab data langs` lists which dataset has which language",
        )
    folder = (
        Path(out)
        if out
        else Path("results") / f"evaluate-{'-'.join(config.tasks) if len(config.tasks) < 3 else 'suite'}"
    )
    if out is None:
        folder = new_results_dir(folder.name, folder.parent)
    # one run at a time (a second one refuses, naming the first); a file in the way or no write permission:
    # one line, before the model loads
    store = ResultFolder(folder, fingerprint_of(config.__dict__), what="evaluation results")
    with store.lock():
        store.check_restartable(config.__dict__, "evaluation")  # finished: refused; crashed, same config: redone
        return write_evaluation(config, store, tasks, todo, skipped, start, progress)


def write_evaluation(
    config: EvaluateConfig,
    store: ResultFolder,
    tasks: dict[str, Any],
    todo: dict[str, list[str]],
    skipped: list[dict[str, str]],
    start: float,
    progress: bool,
) -> dict[str, pd.DataFrame]:
    """Load the encoders, evaluate ``todo`` (task -> languages) and write every file of ``folder``,
    ``done.json`` last (:func:`run_evaluation` holds the folder's lock)."""
    from ..models.encoder import Encoder  # torch: when a folder is evaluated, not for the command's help
    from .encodings import EvalEncoder

    folder = store.folder
    everything = TaskFold(0, None, None, None)
    teacher = EvalEncoder(
        Encoder.load(config.model, max_length=config.max_length, **config.backbone),
        memo=True,
        batch_size=config.batch_size,
    )
    student = (
        teacher
        if config.student is None
        else EvalEncoder(
            Encoder.load(config.student, max_length=config.max_length), memo=True, batch_size=config.batch_size
        )
    )
    data_files = [f for name, langs in todo.items() for lang in langs for f in tasks[name].data_files(lang)]
    write_json(
        config.__dict__
        | {
            "method": config.method,
            "task_options_used": {n: t.options() for n, t in tasks.items()},
            "student_files": folder_digest(config.student) if config.student else None,
        },
        folder / "config.json",
    )
    write_json(
        environment() | {"cpu_flags": shown_flags()} | provenance(data_files, teacher.source),
        folder / "environment.json",
    )
    for row in skipped:
        print(f"skip {row['task']} {row['lang']}: {row['reason']}", flush=True)
    write_csv(pd.DataFrame(skipped, columns=["task", "lang", "reason"]), folder / "skipped.csv", index=False)
    tables, seconds = {}, {}
    for name, langs in todo.items():
        task, by_lang = tasks[name], {}
        task_start = time.perf_counter()
        for lang in langs:
            results = task.evaluate(lang, everything, teacher, student)
            save_results(
                folder / name / lang,
                results,
                tag=f"{config.method}-{config.model}",
                compress=False,
                inputs=task.SAVE_INPUTS,
            )
            by_lang[lang] = results
            if progress:
                summary = task_table({lang: results}).iloc[0]
                print(f"{name} {lang}: " + "  ".join(f"{k}={v:.3f}" for k, v in summary.items()), flush=True)
        seconds[name] = round(time.perf_counter() - task_start, 1)
        tables[name] = table = task_table(by_lang)
        write_csv(table, folder / f"{name}.csv")
        write_text(table.to_markdown(floatfmt=".3f") + "\n", folder / f"{name}.md")
    store.finish(
        {"results_dir": str(folder), "seconds": round(time.perf_counter() - start, 1), "task_seconds": seconds}
    )  # last but the summary rendered from it: the folder is finished
    write_text(render_summary(folder), folder / "summary.md")
    for name, table in tables.items():
        print(f"\n{name}\n{table.to_string(float_format=lambda v: f'{v:.3f}')}")
    print(f"\nresults: {folder}")
    return tables


def finished_languages_table(folder: Path, task: str) -> pd.DataFrame | None:
    """An interrupted run's table of ``task`` (as :func:`task_table` writes it) from the per-query
    files of the languages whose every sub-task was written; None when there is none. Only metrics
    that are per-query means can be rebuilt so (``TaskResult.extra`` ones, like macro-F1, are not)."""
    from ..tasks.registry import TASKS

    subs = list(TASKS[task].reported)
    rows = {}
    for lang_dir in sorted(p for p in (folder / task).glob("*") if p.is_dir()):
        files = [lang_dir / f"{sub}.per_query.csv" for sub in subs]
        if all(stored_exists(f) for f in files):  # plain or compacted (optical_lab.io)
            rows[lang_dir.name] = {
                sub: TaskResult(sub, {}, pd.read_csv(open_stored(f), index_col="qid")) for sub, f in zip(subs, files)
            }
    return task_table(rows) if rows else None


def wall_clock(text: str) -> str:
    """``/usr/bin/time``'s elapsed time (``m:ss.cc`` or ``h:mm:ss``) as ``1 h 02 min 03 s`` / ``58 min 21 s``."""
    try:
        seconds = round(sum(float(part) * 60**i for i, part in enumerate(reversed(text.split(":")))))
    except ValueError:
        return text or "?"
    hours, rest = divmod(seconds, 3600)
    return (f"{hours} h " if hours else "") + f"{rest // 60:02d} min {rest % 60:02d} s"


def render_summary(folder: str | Path) -> str:
    """``summary.md`` of an evaluation folder, from its files only (config, environment, tables,
    skipped languages, and ``time_v.txt`` when present): what a results document includes."""
    from .results_doc import mean_load, parse_time_log

    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    env = json.loads((folder / "environment.json").read_text(encoding="utf-8"))
    finished = (folder / "done.json").exists()
    done = json.loads((folder / "done.json").read_text(encoding="utf-8")) if finished else {}
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in env.get("cpu_flags", {}).items())
    who = (
        f"student `{config['student']}` (queries by teacher `{config['model']}`)"
        if config.get("student")
        else f"zero-shot: teacher `{config['model']}` on both sides"
    )
    lines = [
        "## What ran",
        "",
        "```",
        " ".join(["optical-lab", *env.get("argv", [])[1:]]),
        "```",
        "",
        f"- {who}; evaluation truncation {config['max_length']} tokens; tasks {', '.join(config['tasks'])}.",
        f"- machine: {env.get('platform')}, {env.get('cpu_count')} cores, torch threads {env.get('torch_threads')}, "
        f"GPU: {env.get('cuda') or 'none'}; CPU flags: {flags or 'unknown'}.",
        f"- started {env.get('time')}; evaluation time per task (s): "
        + ", ".join(f"{k} {v}" for k, v in done.get("task_seconds", {}).items())
        + f"; total {done.get('seconds')} s."
        if finished
        else f"- started {env.get('time')}; **the run did not finish** (no done.json): each table below "
        "is rebuilt from the per-query files of the languages it had finished, which it names.",
    ]
    timing = parse_time_log(folder / "time_v.txt") if stored_exists(folder / "time_v.txt") else {}
    if timing.get("wall"):  # (empty while the command still runs)
        cpu_min = (float(timing.get("user_s", 0)) + float(timing.get("system_s", 0))) / 60
        lines.append(
            f"- `/usr/bin/time -v` (whole command): **wall time {wall_clock(timing.get('wall', ''))}**, peak memory "
            f"{int(timing.get('max_rss_kb', 0)) / 1024**2:.2f} GiB, CPU time {cpu_min:.1f} min "
            f"({timing.get('cpu')} of one core), exit status {timing.get('exit')}."
        )
    load = mean_load(folder / "loadavg.log") if stored_exists(folder / "loadavg.log") else None
    if load is not None:
        lines.append(
            f"- mean 1-minute load average during the run {load:.1f} on {env.get('cpu_count')} cores (sampled "
            "every 30 s; above the run's own threads it is other jobs sharing the machine)."
        )
    for name in config["tasks"]:
        if (folder / f"{name}.md").exists():
            lines += ["", f"## {name}", "", (folder / f"{name}.md").read_text(encoding="utf-8").rstrip()]
        elif not finished and (table := finished_languages_table(folder, name)) is not None:
            lines += [
                "",
                f"## {name} (languages finished: {', '.join(table.index)})",
                "",
                table.to_markdown(floatfmt=".3f"),
            ]
    skipped = pd.read_csv(folder / "skipped.csv") if (folder / "skipped.csv").exists() else pd.DataFrame()
    if len(skipped):
        lines += ["", "## Skipped (the task has no data for the language)", ""]
        lines += [f"- {name}: {', '.join(part.lang)}" for name, part in skipped.groupby("task", sort=False)]
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--method",
        default="zero-shot",
        choices=["zero-shot"],
        help="zero-shot (the teacher on both sides) unless --student names a saved student; "
        "training methods: `optical-lab compare`",
    )
    parser.add_argument(
        "--tasks",
        default="suite",
        help=f"comma-separated tasks (optical_lab/tasks/); 'suite' = {','.join(SUITE)}",
    )
    deprecated_flag(parser, "--task", "--tasks")
    parser.add_argument(
        "--langs",
        default=DEFAULT_LANGS,
        help="comma-separated language codes (any spelling; eng = monolingual ceiling), or 'all'",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="teacher: registry name (minilm, me5-small), HF id or local path "
        "(default: the --student's teacher, else minilm)",
    )
    parser.add_argument(
        "--student",
        default=None,
        help="a saved student folder (Encoder.save / compare --save-student); "
        "without it the teacher is evaluated zero-shot",
    )
    parser.add_argument("--max-length", type=int, default=256, help="evaluation truncation in tokens")
    parser.add_argument("--no-sentence-task", action="store_true", help="ntrex: known-item CLIR only")
    parser.add_argument("--out", default=None, help="results folder (default: results/evaluate-<tasks>-<timestamp>)")
    add_backbone_options(parser.add_argument_group("model settings (override what the model's own files say)"))
    add_task_options(parser.add_argument_group("task options (each belongs to the task(s) named in its help)"))


def main(args: argparse.Namespace) -> None:
    tasks = parse_tasks(args.tasks)
    options = task_options_from_args(args, tasks)
    if args.no_sentence_task:
        options["sentence_task"] = False
    langs = data_languages() if args.langs.strip() == "all" else parse_langs(args.langs)
    model = args.model or student_teacher(args.student) or DEFAULT_MODEL
    config = EvaluateConfig(
        langs,
        tasks,
        model,
        str(Path(args.student).resolve()) if args.student else None,
        args.max_length,
        options,
        backbone=backbone_overrides(args),
    )
    run_evaluation(config, args.out)


if __name__ == "__main__":  # older spelling of `optical-lab report summary FOLDER`
    import runpy

    runpy.run_module("optical_lab.experiments.summary_cli", run_name="__main__")  # by name: no import cycle
