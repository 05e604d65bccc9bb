"""Data layer: resolve the data directory, load NTREX / MAFAND-MT / TREC files, build tasks."""
from .bitext import Bitext
from .collections import Collection, Fold, document_folds, fold_bitext, known_item_collection, sentence_collection
from .errors import DataError
from .languages import normalize_lang, parse_langs
from .mafand import MAFAND_LANGS, load_mafand
from .ntrex import NtrexCorpus, load_ntrex
from .paths import DATA_ENV, cache_dir, data_dir

__all__ = [
    "Bitext", "Collection", "Fold", "DataError", "NtrexCorpus", "MAFAND_LANGS", "DATA_ENV",
    "cache_dir", "data_dir", "document_folds", "fold_bitext", "known_item_collection",
    "sentence_collection", "load_mafand", "load_ntrex", "normalize_lang", "parse_langs",
]
