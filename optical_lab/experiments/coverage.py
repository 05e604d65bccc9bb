"""Does the dev bitext write a language the way its evaluation texts do? Characters and tokenizer coverage.

Model selection scores the dev bitext (MAFAND-MT dev); a letter the dev text never writes, or a word
piece the backbone maps to its unknown token on evaluation text only, makes dev a poor guide to
evaluation (protocol v2: MAFAND hau writes none of the hooked letters ɓ ɗ ƙ, NTREX and FLORES hau do,
and MiniLM's vocabulary maps them to [UNK]). For each family language this module measures, reading
texts only (no model is run, nothing is scored):

* **letters** (Unicode categories L* and M*, after NFC and case folding): which letters of an
  evaluation text never occur in the dev text's foreign side, the share of evaluation sentences that
  contain one, and the share of evaluation letters they make up;
* **tokenizer coverage** per backbone: the share of word pieces that are the unknown token
  (special tokens left out), the share of whitespace words with an unknown piece, and pieces per word,
  for the dev text and for each evaluation text.

Evaluation texts (foreign side): NTREX-128, FLORES-200 (the SIB-200 sentences, all splits), the AfriQA
test questions as written natively, TICO-19 segments — each where the data folder holds it.

    optical-lab coverage --doc docs/dev_coverage.md
"""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence
from xml.etree import ElementTree

from ..data.errors import DataError
from ..data.mafand import load_mafand
from ..data.ntrex import load_ntrex
from ..data.paths import data_dir
from ..data.sib import load_sib
from ..io import write_json
from ..models.me5 import ensure_me5_small
from ..models.registry import minilm_path
from .command import run_module
from .power import FAMILY_LANGS, TICO_CODES

BACKBONES: dict[str, Callable[[], Path]] = {"minilm": minilm_path, "me5-small": ensure_me5_small}


# ---------------------------------------------------------------- texts (foreign side only)
def dev_text(lang: str) -> list[str] | None:
    """The foreign side of the MAFAND-MT dev split; Luo from its upstream folder ``en_luo`` (the MAFAND
    loader reads ``en-LANG`` folders only)."""
    try:
        return load_mafand(lang, "dev").foreign
    except DataError:
        path = data_dir("mafand-mt") / "mafand-mt" / f"en_{lang}" / f"dev.{lang}"
        return path.read_text(encoding="utf-8").splitlines() if path.exists() else None


def _ntrex(lang: str) -> list[str] | None:
    try:
        return load_ntrex(lang).target
    except (DataError, FileNotFoundError):
        return None


def _flores(lang: str) -> list[str] | None:
    try:
        sib = load_sib(lang)
    except DataError:
        return None
    return [t for split in sib.splits.values() for t in split.texts]


def _afriqa(lang: str) -> list[str] | None:
    path = data_dir("afriqa") / "afriqa" / "data" / "queries" / lang / f"queries.afriqa.{lang}.en.test.json"
    if not path.exists():
        return None
    return [json.loads(line)["question"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _tico(lang: str) -> list[str] | None:
    code = TICO_CODES.get(lang)
    path = data_dir("tico-19") / "tico-19" / "data" / "TM" / f"all.en-{code}.tmx.zip"
    if code is None or not path.exists():
        return None
    with zipfile.ZipFile(path) as archive:
        root = ElementTree.fromstring(archive.read(next(n for n in archive.namelist() if n.endswith(".tmx"))))
    lang_key = "{http://www.w3.org/XML/1998/namespace}lang"
    return ["".join(tuv.find("seg").itertext()) for tuv in root.iter("tuv") if tuv.get(lang_key) == code]


EVAL_TEXTS: dict[str, Callable[[str], list[str] | None]] = {
    "NTREX": _ntrex,
    "FLORES/SIB-200": _flores,
    "AfriQA questions (test)": _afriqa,
    "TICO-19": _tico,
}


# ---------------------------------------------------------------- measures
def letters(text: str) -> list[str]:
    """The letters and marks of ``text`` after NFC and case folding."""
    return [c for c in unicodedata.normalize("NFC", text).casefold() if unicodedata.category(c)[0] in "LM"]


def letter_gap(dev: Sequence[str], evaluation: Sequence[str], top: int = 6) -> dict[str, object]:
    """Letters of ``evaluation`` absent from ``dev``: the most frequent (with the share of evaluation
    sentences containing each), the share of sentences with any, and their share of all letters."""
    known = {c for s in dev for c in letters(s)}
    per_sentence = [set(letters(s)) - known for s in evaluation]
    counts = Counter(c for s in evaluation for c in letters(s))
    missing = Counter({c: n for c, n in counts.items() if c not in known})
    in_sentences = Counter(c for s in per_sentence for c in s)
    n = max(1, len(evaluation))
    return {
        "sentences": len(evaluation),
        "missing_letters": len(missing),
        # ties by code point: a set's order changes with every process (hash seed), the document must not
        "top": [(c, k / n) for c, k in sorted(in_sentences.items(), key=lambda item: (-item[1], item[0]))[:top]],
        "sentences_with_missing": sum(bool(s) for s in per_sentence) / n,
        "letter_share_missing": sum(missing.values()) / max(1, sum(counts.values())),
    }


def tokenizer_coverage(tokenizer, texts: Sequence[str]) -> dict[str, float]:
    """Unknown-token share of the word pieces, share of whitespace words with an unknown piece, pieces per word."""
    unk = tokenizer.unk_token_id
    pieces = unknown = words = words_unknown = 0
    for start in range(0, len(texts), 256):
        batch = [w for t in texts[start : start + 256] for w in t.split()]
        for ids in tokenizer(batch, add_special_tokens=False)["input_ids"]:
            pieces += len(ids)
            hits = sum(i == unk for i in ids)
            unknown += hits
            words_unknown += hits > 0
        words += len(batch)
    return {
        "unk_pieces": unknown / max(1, pieces),
        "unk_words": words_unknown / max(1, words),
        "pieces_per_word": pieces / max(1, words),
    }


@dataclass
class Coverage:
    letters: list[dict[str, object]]
    tokens: list[dict[str, object]]


def measure(langs: Sequence[str] = FAMILY_LANGS, backbones: Sequence[str] = tuple(BACKBONES)) -> Coverage:
    from transformers import AutoTokenizer  # it loads torch: here, not for the command's help

    tokenizers = {name: AutoTokenizer.from_pretrained(str(BACKBONES[name]())) for name in backbones}
    letter_rows, token_rows = [], []
    for lang in langs:
        dev = dev_text(lang)
        if dev is None:
            continue
        texts = {"MAFAND dev": dev, **{name: t for name, read in EVAL_TEXTS.items() if (t := read(lang))}}
        for name, text in texts.items():
            if name != "MAFAND dev":
                letter_rows.append({"lang": lang, "text": name, **letter_gap(dev, text)})
            for backbone, tokenizer in tokenizers.items():
                token_rows.append(
                    {
                        "lang": lang,
                        "text": name,
                        "backbone": backbone,
                        "sentences": len(text),
                        **tokenizer_coverage(tokenizer, text),
                    }
                )
    return Coverage(letter_rows, token_rows)


def document(coverage: Coverage) -> str:
    lines = [
        "# Dev text coverage: does MAFAND-MT dev write each language as the evaluation texts do?",
        "",
        "Generated by `optical-lab coverage --doc docs/dev_coverage.md` (texts only: no "
        "model is run, nothing is scored); never edited by hand. Method: module docstring of "
        "`optical_lab/experiments/coverage.py`. Letters are compared after NFC and case folding; "
        "tokenizer rates are over whitespace words of the raw text.",
        "",
        "## Letters of the evaluation text that the dev text never writes",
        "",
        "| lang | evaluation text | sentences | letters absent from dev | sentences with one | share of letters "
        "| most frequent absent letters (share of sentences) |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in coverage.letters:
        top = ", ".join(f"{c} ({U(c)}) {share:.1%}" for c, share in r["top"]) or "-"
        lines.append(
            f"| {r['lang']} | {r['text']} | {r['sentences']} | {r['missing_letters']} | "
            f"{r['sentences_with_missing']:.1%} | {r['letter_share_missing']:.2%} | {top} |"
        )
    lines += [
        "",
        "## Unknown word pieces, dev vs evaluation text, per backbone",
        "",
        "`unk pieces`: share of word pieces that are the tokenizer's unknown token; `unk words`: share of "
        "whitespace words with one; `pieces/word`: tokenizer fertility.",
        "",
        "| lang | text | backbone | sentences | unk pieces | unk words | pieces/word |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in coverage.tokens:
        lines.append(
            f"| {r['lang']} | {r['text']} | {r['backbone']} | {r['sentences']} | {r['unk_pieces']:.2%} | "
            f"{r['unk_words']:.2%} | {r['pieces_per_word']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def U(char: str) -> str:
    """``U+0253`` for a character."""
    return f"U+{ord(char):04X}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``optical-lab coverage``."""
    parser.add_argument("--langs", default=",".join(FAMILY_LANGS), help="the languages to measure")
    parser.add_argument("--backbones", default=",".join(BACKBONES), help="the tokenizers to measure coverage with")
    parser.add_argument("--doc", type=Path, help="write the markdown document here")
    parser.add_argument("--json", type=Path, help="write the measurements as JSON here")


def main(args: argparse.Namespace) -> None:
    """Print the coverage document; write it and the JSON when asked."""
    coverage = measure(args.langs.split(","), args.backbones.split(","))
    text = document(coverage)
    print(text)
    if args.doc:
        args.doc.write_text(text, encoding="utf-8")
    if args.json:
        write_json({"letters": coverage.letters, "tokens": coverage.tokens}, args.json)


if __name__ == "__main__":
    sys.exit(run_module(add_arguments, main, "python -m optical_lab.experiments.coverage"))
