"""The frozen English teacher as the losses see it: pooled and token outputs, never a gradient.

The teacher never changes, so its outputs on the training English are computed **once** per
(language, fold) by :meth:`FrozenTeacher.precompute` and reused by every method and every step.
Each sentence is encoded **on its own** (no padding, no batch neighbours), so a cached value
depends on nothing but the sentence: a run is bit-for-bit reproducible whether it is resumed from
a checkpoint, run alone, or run after other methods or bitext sizes filled the cache (with
batched encoding, low-precision kernels give slightly different numbers for different batches).

With ``cache_dir`` the precomputed outputs are also kept **on disk** (one safetensors file per set
of texts), so other processes and later runs -- every method and seed of a comparison, a resumed
or repeated ``compare`` -- load them instead of encoding again. A file is named by a hash of
everything its numbers depend on: the teacher's weights, configuration and tokenizer, the
truncation length, the autocast precision, the device type, the torch version and the texts
themselves; anything changed is a different file, never a stale hit. Each file also records that
key and a SHA-256 of its tensors: a truncated, damaged or edited file (or one copied under another
name) is detected when read, reported and recomputed, never used. :meth:`FrozenTeacher.cache_record`
names the file and its checksum for a cell's record.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
import weakref
from pathlib import Path
from typing import Iterator, Sequence

import torch
from safetensors.torch import load_file, save_file
from torch.nn.utils.rnn import pad_sequence

from ..data.errors import DataError
from ..models.encoder import Encoder, TokenBatch


@contextlib.contextmanager
def truncation(encoder: Encoder, max_length: int | None) -> Iterator[Encoder]:
    """Temporarily tokenise ``encoder``'s inputs to at most ``max_length`` tokens."""
    old = encoder.max_length
    if max_length:
        encoder.max_length = max_length
    try:
        yield encoder
    finally:
        encoder.max_length = old


@contextlib.contextmanager
def eval_mode(module: torch.nn.Module) -> Iterator[None]:
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


_MODEL_HASHES: "weakref.WeakKeyDictionary[Encoder, tuple[int, str]]" = weakref.WeakKeyDictionary()


def model_hash(encoder: Encoder) -> str:
    """SHA-256 of an encoder's weights, model configuration and tokenizer (memoised per encoder
    until one of its tensors is modified in place)."""
    tensors = list(encoder.state_dict().items())
    version = sum(t._version for _, t in tensors)
    memo = _MODEL_HASHES.get(encoder)
    if memo is not None and memo[0] == version:
        return memo[1]
    digest = hashlib.sha256()
    for name, tensor in tensors:
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data)
    config = getattr(encoder.model, "config", None)
    digest.update(
        (config.to_json_string(use_diff=False) if config is not None else type(encoder.model).__name__).encode()
    )
    backend = getattr(encoder.tokenizer, "backend_tokenizer", None)
    digest.update((_tokenizer_state(backend) if backend is not None else repr(encoder.tokenizer)).encode())
    _MODEL_HASHES[encoder] = (version, digest.hexdigest())
    return digest.hexdigest()


def _tokenizer_state(backend) -> str:
    """A fast tokenizer's serialisation without its truncation and padding settings: ``encode`` sets those on
    every call, so with them the same model would hash differently before and after its first encode."""
    state = json.loads(backend.to_str())
    state["truncation"] = state["padding"] = None
    return json.dumps(state, sort_keys=True)


def texts_hash(texts: Sequence[str]) -> str:
    """SHA-256 of a list of texts (order and boundaries included)."""
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


class FrozenTeacher:
    """No-grad view of a teacher :class:`Encoder` with a per-sentence token cache.

    ``max_length`` is the training-time truncation; evaluation uses the encoder itself.
    ``cache_dir``: where precomputed outputs are shared between processes and runs (None: memory only).
    """

    def __init__(
        self,
        encoder: Encoder,
        max_length: int | None = None,
        cache: bool = True,
        cache_dir: str | Path | None = None,
        role: str | None = None,
    ) -> None:
        self.encoder = encoder
        self.max_length = max_length
        self.role = role  # the role (prefix) of the training targets, TrainConfig.training_role
        self.cache_enabled = cache
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.disk_hits = self.disk_misses = 0  # precompute() calls served from / written to cache_dir
        self._tokens: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self._encoded: dict[tuple, torch.Tensor] = {}

    @property
    def device(self) -> torch.device:
        return self.encoder.device

    def clear(self) -> None:
        self._tokens.clear()
        self._encoded.clear()

    @torch.no_grad()
    def _compute(self, texts: Sequence[str]) -> TokenBatch:
        with truncation(self.encoder, self.max_length), eval_mode(self.encoder):
            batch = self.encoder.tokens(list(texts), self.role)
        return TokenBatch(batch.embeddings.float(), batch.mask, batch.special, batch.input_ids)

    @torch.no_grad()
    def precompute(self, texts: Sequence[str]) -> None:
        """Cache the token outputs of ``texts``, one sentence at a time (see the module doc); from
        and to ``cache_dir`` when given."""
        if not self.cache_enabled:
            return
        unique = list(dict.fromkeys(texts))
        if all(text in self._tokens for text in unique):
            return
        path = self.cache_path(unique) if self.cache_dir is not None else None
        if path is not None and path.exists():
            try:
                self._tokens.update(zip(unique, _read_rows(path, len(unique), path.stem)))
                self.disk_hits += 1
                return
            except DataError as exc:
                warnings.warn(f"teacher cache not used, recomputed: {exc}", stacklevel=2)
        for text in unique:
            if text not in self._tokens:
                batch = self._compute([text])
                self._tokens[text] = (batch.embeddings[0].cpu(), batch.special[0].cpu(), batch.input_ids[0].cpu())
        if path is not None:
            _write_rows(path, [self._tokens[t] for t in unique], path.stem)
            self.disk_misses += 1

    def cache_path(self, unique_texts: Sequence[str]) -> Path:
        """The cache file of these (deduplicated) texts under the current autocast precision."""
        device = self.device.type
        autocast = str(torch.get_autocast_dtype(device)) if torch.is_autocast_enabled(device) else "no"
        key = json.dumps(
            {
                "model": model_hash(self.encoder),
                "texts": texts_hash(unique_texts),
                "max_length": self.max_length,
                "autocast": autocast,
                "device": device,
                **({"role": self.role} if self.role else {}),
                "torch": torch.__version__,
                "format": 2,
            },
            sort_keys=True,
        )
        return self.cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.safetensors"

    def cache_record(self, texts: Sequence[str]) -> dict[str, str] | None:
        """``{"file", "sha256"}`` of the disk cache file holding ``texts``' targets (the checksum stored
        in it, verified when it was read), for the record of a cell trained on them; None without one."""
        if self.cache_dir is None or not self.cache_enabled:
            return None
        path = self.cache_path(list(dict.fromkeys(texts)))
        try:
            from safetensors import safe_open

            with safe_open(str(path), "pt") as handle:
                checksum = (handle.metadata() or {}).get("sha256")
        except (OSError, ValueError, RuntimeError):  # absent (cache off for these texts) or unreadable
            return None
        return {"file": path.name, "sha256": checksum} if checksum else None

    def tokens(self, texts: Sequence[str]) -> TokenBatch:
        """Token embeddings (B, L, d), float32, detached; from the cache when every text is in it."""
        if not (self.cache_enabled and all(t in self._tokens for t in texts)):
            return self._compute(texts)
        rows = [self._tokens[t] for t in texts]
        embeddings = pad_sequence([r[0] for r in rows], batch_first=True)
        lengths = torch.tensor([len(r[0]) for r in rows])
        mask = torch.arange(embeddings.shape[1])[None, :] < lengths[:, None]
        special = pad_sequence([r[1] for r in rows], batch_first=True, padding_value=False)
        input_ids = pad_sequence([r[2] for r in rows], batch_first=True, padding_value=0)
        device = self.device
        return TokenBatch(embeddings.to(device), mask.to(device), special.to(device), input_ids.to(device))

    def pooled(self, texts: Sequence[str]) -> torch.Tensor:
        """Sentence embeddings (B, d) pooled as ``Encoder.forward`` pools them (the backbone's pooling)."""
        return self.encoder.pool(self.tokens(texts))

    def encode(self, texts: Sequence[str], batch_size: int = 64, role: str | None = None) -> torch.Tensor:
        """Pooled embeddings of many texts at the encoder's own (evaluation) length, on CPU (memoised:
        the teacher never changes)."""
        key = (tuple(texts), batch_size, self.encoder.max_length, torch.is_autocast_enabled(self.device.type), role)
        if key not in self._encoded:
            self._encoded[key] = self.encoder.encode(list(texts), role, batch_size=batch_size)
        return self._encoded[key]


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes (sorted by name)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def _write_rows(path: Path, rows: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], key: str) -> None:
    """Per-sentence (embeddings, special, input_ids) rows as one safetensors file (concatenated
    along the token axis, with the lengths), written atomically under a unique temporary name, with
    its cache ``key`` and :func:`tensors_sha256` in the file's metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        "embeddings": torch.cat([r[0] for r in rows]).contiguous(),
        "special": torch.cat([r[1] for r in rows]).contiguous(),
        "input_ids": torch.cat([r[2] for r in rows]).contiguous(),
        "lengths": torch.tensor([len(r[0]) for r in rows], dtype=torch.int64),
    }
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    save_file(tensors, str(tmp), metadata={"rows": str(len(rows)), "key": key, "sha256": tensors_sha256(tensors)})
    os.replace(tmp, path)


def _read_rows(path: Path, n: int, key: str) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The rows of a cache file, after checking that it reads, is the file of ``key`` and still has
    the checksum it was written with (a :class:`DataError` naming the file otherwise)."""
    fix = "nothing to do: the file is recomputed (delete it to silence this)"
    try:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for a truncated file
        raise DataError(f"unreadable teacher cache ({type(exc).__name__}: {exc})", path=path, fix=fix) from None
    if metadata.get("key") != key:
        raise DataError("teacher cache file of another key (copied or renamed)", path=path, fix=fix)
    if metadata.get("sha256") != tensors_sha256(tensors):
        raise DataError("teacher cache values differ from its checksum (damaged or edited)", path=path, fix=fix)
    lengths = tensors["lengths"].tolist()
    if len(lengths) != n:  # a name collision or a damaged file: never serve wrong targets
        raise DataError(f"{len(lengths)} cached teacher rows for {n} texts", path=path, fix=fix)
    parts = [tensors[k].split(lengths) for k in ("embeddings", "special", "input_ids")]
    return list(zip(*parts))
