"""MTEB's published NTREX bitext-mining scores, read from git clones of its repositories: the reference side
of the external calibration (:mod:`.calibration`, its ``extract`` step).

:func:`extract` reads ``NTREXBitextMining.json`` of every backbone in :data:`MTEB_MODELS` from a clone of
github.com/embeddings-benchmark/results (the committed files, through ``git show``) and keeps, for every
NTREX language of our data folder, both English subsets with the file's path, blob id, commit, MTEB
version and dataset revision; with a clone of embeddings-benchmark/mteb, also the commit of that MTEB
version's tag and the F1 averaging its evaluator uses (:func:`mteb_definition`, read from the source).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from ..data.languages import canonical_code, known_languages

RESULTS_REPO = "https://github.com/embeddings-benchmark/results"
MTEB_REPO = "https://github.com/embeddings-benchmark/mteb"
MTEB_TASK = "NTREXBitextMining"
# our registry name -> the model MTEB's results name (folder results/<org>__<name>/<revision>/)
MTEB_MODELS = {"minilm": "sentence-transformers/all-MiniLM-L6-v2", "me5-small": "intfloat/multilingual-e5-small"}


def ntrex_languages(root: Path | None = None) -> list[str]:
    """Every non-English language of the data folder's NTREX (canonical codes, sorted)."""
    languages = known_languages(root)
    return sorted(code for code, entry in languages.items() if "ntrex-128" in entry.datasets and code != "eng")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def published_file(repo: Path, mteb_name: str) -> str:
    """Path of ``<org>__<name>/<revision>/NTREXBitextMining.json`` in the results repository (one revision)."""
    folder = f"results/{mteb_name.replace('/', '__')}/"
    paths = [
        p
        for p in _git(repo, "ls-tree", "-r", "--name-only", "HEAD", folder).splitlines()
        if p.endswith(f"/{MTEB_TASK}.json")
    ]
    if len(paths) != 1:
        raise SystemExit(f"expected one {MTEB_TASK}.json under {folder} in {repo}, found {paths}")
    return paths[0]


def english_subsets(scores: list[dict[str, Any]], langs: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """lang -> {MTEB subset: its four scores} for the ``eng_Latn-X`` / ``X-eng_Latn`` subsets whose X
    is one of ``langs`` (MTEB's ``hau_Latn`` goes through our one normaliser: ``hau``)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for row in scores:
        a, b = row["hf_subset"].split("-")
        other = b if a == "eng_Latn" else a if b == "eng_Latn" else None
        lang = canonical_code(other) if other else None
        if lang in langs:
            out.setdefault(lang, {})[row["hf_subset"]] = {k: row[k] for k in ("f1", "accuracy", "precision", "recall")}
    return out


def mteb_definition(mteb: Path, version: str) -> dict[str, Any]:
    """The commit of MTEB tag ``version`` and the F1 averaging its bitext-mining evaluator uses."""
    path = "mteb/evaluation/evaluators/BitextMiningEvaluator.py"
    source = _git(mteb, "show", f"{version}:{path}")
    average = re.findall(r'f1_score\([^)]*average="(\w+)"', source)
    return {
        "tag": version,
        "commit": _git(mteb, "rev-parse", f"{version}^{{commit}}").strip(),
        "evaluator": path,
        "f1_average": average[0] if len(set(average)) == 1 else average,
        "top_k": re.findall(r"_similarity_search\([^)]*top_k=(\d+)", source),
    }


def extract(repo: Path, mteb: Path | None = None, langs: list[str] | None = None) -> dict[str, Any]:
    """The reference record (module doc, ``extract``)."""
    langs = langs or ntrex_languages()
    head = _git(repo, "rev-parse", "HEAD").strip()
    record: dict[str, Any] = {
        "source": {
            "repository": RESULTS_REPO,
            "commit": head,
            "task": MTEB_TASK,
            "extracted_by": "optical-lab calibration extract --results-repo <clone>",
        },
        "models": {},
    }
    for model, name in MTEB_MODELS.items():
        path = published_file(repo, name)
        data = json.loads(_git(repo, "show", f"HEAD:{path}"))
        entry = {
            "mteb_name": name,
            "model_revision": path.split("/")[2],
            "path": path,
            "blob": _git(repo, "rev-parse", f"HEAD:{path}").strip(),
            "last_commit": _git(repo, "log", "-1", "--format=%H", "HEAD", "--", path).strip(),
            "mteb_version": data["mteb_version"],
            "dataset_revision": data["dataset_revision"],
            "scores": english_subsets(data["scores"]["test"], langs),
        }
        if mteb is not None:
            entry["definition"] = mteb_definition(mteb, data["mteb_version"])
        record["models"][model] = entry
    return record
