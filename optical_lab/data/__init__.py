"""Data layer: resolve the data directory, load NTREX / MAFAND-MT / SIB-200 / AfriQA / TICO-19 / TREC / user
files, build tasks."""

from .bitext import Bitext
from .collections import Collection, Fold, document_folds, fold_bitext, known_item_collection, sentence_collection
from .errors import DataError
from .languages import canonical_code, known_languages, normalize_lang, parse_langs
from .leakage import LeakReport, guard_overlap, measure_overlap
from .mafand import MAFAND_LANGS, load_mafand
from .ntrex import NtrexCorpus, load_ntrex
from .paths import DATA_ENV, DataSource, cache_dir, data_dir, data_source
from .sib import SibLanguage, load_sib
from .user_bitext import load_bitext_files, load_bitext_tsv

__all__ = [
    "Bitext",
    "Collection",
    "Fold",
    "DataError",
    "NtrexCorpus",
    "MAFAND_LANGS",
    "DATA_ENV",
    "cache_dir",
    "data_dir",
    "document_folds",
    "fold_bitext",
    "known_item_collection",
    "sentence_collection",
    "load_mafand",
    "load_ntrex",
    "normalize_lang",
    "parse_langs",
    "canonical_code",
    "known_languages",
    "LeakReport",
    "guard_overlap",
    "measure_overlap",
    "DataSource",
    "data_source",
    "SibLanguage",
    "load_sib",
    "load_bitext_files",
    "load_bitext_tsv",
]
