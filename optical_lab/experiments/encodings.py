"""The evaluation's encoders: :class:`EvalEncoder`, an encoder with a fixed encode batch size and, for the
teacher, its encodings remembered in memory and on disk (``<out>/.cache/encodings``).

The comparison runner (:mod:`.runner`) evaluates every cell with one; ``optical-lab evaluate``
(:mod:`.evaluate`) with two (teacher and student).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..methods.teacher import model_hash, texts_hash
from ..models.encoder import Encoder, Tokenized


class EvalEncoder(Encoder):
    """An encoder as the evaluation sees it: same weights, fixed encode batch size, optional memo.

    * ``memo=True`` (the teacher): ``encode`` remembers its answers. Queries (and, for zero-shot,
      documents) are the same for every method of a language and fold, so they are encoded once.
      ``optical-lab evaluate`` memoises the student too (its weights never change there).
    * ``cache_dir`` (with ``memo``): the answers are also kept on disk, one safetensors file per call,
      named by a hash of everything the numbers depend on (:meth:`cache_path`: the weights, tokenizer and
      configuration, the texts as the model sees them, the truncation length, the batch size, the autocast
      precision, the device type, the torch version). Every cell and every run into the same results folder
      (a resumed grid, ``--join`` workers, later seeds) loads the English side -- NTREX and FLORES English,
      any task's English passages -- instead of encoding it again; a file whose row count or text hash does not
      match is recomputed, never served.
    * ``batch_size``: every ``encode`` uses it, whatever the caller asks (encode sorts texts by
      length; on CPU 32 is ~1.5x faster than 128 for sentence batches, measured on 2 cores).
    """

    def __init__(
        self, base: Encoder, memo: bool = False, batch_size: int | None = 32, cache_dir: str | Path | None = None
    ) -> None:
        super().__init__(base.model, base.tokenizer, **base.settings())
        self.memo = memo
        self.batch_size = batch_size
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.disk_hits = self.disk_misses = 0
        self._memo: dict[tuple, torch.Tensor] = {}

    def encode(
        self, texts: Sequence[str], role=None, batch_size: int = 64, progress: bool | str = False
    ) -> torch.Tensor:
        batch_size = self.batch_size or batch_size
        if not self.memo or isinstance(texts, Tokenized):  # (pretokenised texts: the caller re-encodes them)
            return super().encode(texts, role, batch_size, progress)
        # keyed by the texts as the model sees them (prefix included): a backbone without role
        # prefixes (MiniLM) encodes a sentence once whether it is a query or a passage
        key = (self.max_length, torch.is_autocast_enabled(self.device.type), tuple(self._with_prefix(texts, role)))
        if key not in self._memo:
            self._memo[key] = self._cached(
                key[2], batch_size, lambda: super(EvalEncoder, self).encode(texts, role, batch_size, progress)
            )
        return self._memo[key].clone()

    def cache_path(self, seen: Sequence[str], batch_size: int) -> tuple[Path, str]:
        """(file, texts hash) of one encode call in ``cache_dir``; ``seen``: the texts with their prefixes."""
        device = self.device.type
        autocast = str(torch.get_autocast_dtype(device)) if torch.is_autocast_enabled(device) else "no"
        texts = texts_hash(seen)
        key = json.dumps(
            {
                "model": model_hash(self),
                "texts": texts,
                "max_length": self.max_length,
                "batch_size": batch_size,
                "pooling": self.pooling,
                "autocast": autocast,
                "device": device,
                "torch": torch.__version__,
                "format": 1,
            },
            sort_keys=True,
        )
        return self.cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.safetensors", texts

    def _cached(self, seen: Sequence[str], batch_size: int, compute) -> torch.Tensor:
        """``compute()``, or its saved result from ``cache_dir`` (checked against the texts it was made of)."""
        if self.cache_dir is None:
            return compute()
        path, texts = self.cache_path(seen, batch_size)
        if path.is_file():
            with contextlib.suppress(OSError, ValueError, KeyError):  # unreadable: recompute and overwrite
                saved = safe_open_tensor(path)
                if saved[1].get("texts") == texts and saved[0].shape[0] == len(seen):
                    self.disk_hits += 1
                    return saved[0]
        value = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        save_file({"embeddings": value.detach().cpu().contiguous()}, str(tmp), metadata={"texts": texts})
        os.replace(tmp, path)
        self.disk_misses += 1
        return value

    def clear(self) -> None:
        self._memo.clear()


def safe_open_tensor(path: Path) -> tuple[torch.Tensor, dict[str, str]]:
    """The ``embeddings`` tensor of a safetensors file and the file's metadata."""
    with safe_open(str(path), framework="pt") as handle:
        return handle.get_tensor("embeddings"), handle.metadata() or {}
