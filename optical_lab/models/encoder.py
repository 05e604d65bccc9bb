"""A transformer encoder seen the way retrieval and OT distillation need it.

:class:`Encoder` wraps ``transformers.AutoModel`` + its tokenizer and exposes two views:

* **token embeddings** with their attention mask and a special-token mask
  (what the OT loss aligns), and
* **pooled sentence embeddings**, pooled as the backbone's model card prescribes: mean over real
  tokens (all-MiniLM-L6-v2, multilingual-e5), the first token (``"cls"``, e.g. BGE-style models) or
  the element-wise maximum over real tokens (``"max"``), then L2-normalised unless the model scores
  by raw dot product (``normalize=False``). The backbone registry (:mod:`.registry`, which reads a
  model's sentence-transformers configuration) chooses; :meth:`Encoder.pool` is the one
  implementation every caller (retrieval, the losses, the trainer) goes through.

:meth:`Encoder.save` writes a Hugging Face folder that is also a sentence-transformers model
(:mod:`.st_format`): ``SentenceTransformer(folder)`` gives the same embeddings, prompts included.

Retrieval roles: some models (e5) expect ``"query: "`` / ``"passage: "`` prefixes; the
encoder adds them when ``role`` is given, so callers never handle model-specific strings.
"""

from __future__ import annotations

import contextlib
import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal, Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .registry import DEFAULT_MODEL, ENCODER_FILE, POOLINGS, role_prefix
from .st_format import write_settings
from .unpadded import DEFAULT_DRAWS, default_enabled, supports, unpadded_forward

Role = Literal["query", "passage"] | None
Pooling = Literal["mean", "cls", "max"]


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class TokenBatch:
    """Contextual token embeddings of a padded batch of sentences."""

    embeddings: torch.Tensor  # (B, L, d)
    mask: torch.Tensor  # (B, L) bool, True on real tokens (incl. special ones)
    special: torch.Tensor  # (B, L) bool, True on [CLS]/[SEP]/<s>/</s>
    input_ids: torch.Tensor  # (B, L)


def mean_pool(embeddings: torch.Tensor, mask: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Average the real-token embeddings of each row; L2-normalise when asked."""
    weights = mask.to(embeddings.dtype).unsqueeze(-1)
    pooled = (embeddings * weights).sum(1) / weights.sum(1).clamp_min(1e-9)
    return F.normalize(pooled, dim=-1) if normalize else pooled


def similarity(queries: torch.Tensor, documents: torch.Tensor) -> torch.Tensor:
    """Inner products (queries x documents) in float32 whatever autocast is active: the comparison runner
    evaluates and selects inside its bf16 autocast region, where the product would be rounded to 8 bits of
    mantissa and tie documents whose cosines differ by less than ~0.004 (their order then set by document
    id or by the tie rule, not by the model). Every retrieval score goes through here: the search of
    :mod:`optical_lab.retrieval.dense` and the trainer's dev MRR (which is why it lives beside the encoder,
    below both)."""
    with torch.autocast(queries.device.type, enabled=False):
        return queries.float() @ documents.float().T


class Encoder(torch.nn.Module):
    """Tokenizer + transformer body, with pooled and token-level outputs.

    >>> from optical_lab import Encoder
    >>> encoder = Encoder.load("minilm", device="cpu")
    >>> vectors = encoder.encode(["Habari ya asubuhi", "Good morning"])
    >>> vectors.shape, encoder.pooling, round(float(vectors[0].norm()), 4)
    (torch.Size([2, 384]), 'mean', 1.0)
    >>> encoder.tokens(["Good morning"]).embeddings.shape  # [CLS] good morning [SEP]
    torch.Size([1, 4, 384])
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        *,
        name: str = "",
        max_length: int = 256,
        query_prefix: str = "",
        passage_prefix: str = "",
        pooling: Pooling = "mean",
        normalize: bool = True,
        source: str = "",
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.max_length = max_length
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.pooling = pooling
        self.normalize = normalize
        self.source = source  # the folder (or hub id) the weights came from; hashed into a result's provenance
        # dense layers on the real tokens only (models/unpadded.py); None: its default (on where supported)
        self.unpad: bool | None = None
        # the dropout masks an unpadded training forward draws: Hugging Face's or the fast ones (models/unpadded.py)
        self.dropout_draws = DEFAULT_DRAWS

    @property
    def max_positions(self) -> int | None:
        """The most tokens the model can embed in one text (its position table; the tokenizer's own
        limit when smaller, as XLM-R's 514 positions hold 512 tokens); None when the model does not say."""
        limits = [
            getattr(getattr(self.model, "config", None), "max_position_embeddings", None),
            getattr(self.tokenizer, "model_max_length", None),
        ]
        limits = [int(n) for n in limits if isinstance(n, int) and 0 < n < 1_000_000]
        return min(limits) if limits else None

    def check_max_length(self, max_length: int, flag: str = "--max-length") -> None:
        """Refuse (DataError) a truncation longer than :attr:`max_positions`: the model would fail on
        the first longer text, after a run had started writing."""
        from ..data.errors import DataError

        limit = self.max_positions
        if limit is not None and max_length > limit:
            raise DataError(
                f"{flag} {max_length} is longer than {self.name or 'the model'} can embed ({limit} tokens)",
                fix=f"use {flag} {limit} or less",
            )

    def settings(self) -> dict:
        """The constructor keywords besides model and tokenizer (to wrap the same encoder differently)."""
        return dict(
            name=self.name,
            max_length=self.max_length,
            query_prefix=self.query_prefix,
            passage_prefix=self.passage_prefix,
            pooling=self.pooling,
            normalize=self.normalize,
            source=self.source,
        )

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        name_or_path: str = DEFAULT_MODEL,
        device: str | torch.device | None = None,
        max_length: int | None = None,
        **overrides,
    ) -> "Encoder":
        """Load a registry name (``minilm``, ``me5-small``), a Hugging Face id or a local folder.

        ``overrides`` (``pooling``, ``query_prefix``, ``passage_prefix``, ``normalize``) replace the
        settings the model's files prescribe (:func:`~optical_lab.models.registry.resolve_backbone`).
        """
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # the unused pooler weights otherwise print a load report

        from .registry import resolve_backbone

        spec = resolve_backbone(name_or_path, **overrides)
        tokenizer = AutoTokenizer.from_pretrained(spec.path)
        model = (
            AutoModel.from_pretrained(spec.path, add_pooling_layer=False)
            if spec.is_bert
            else AutoModel.from_pretrained(spec.path)
        )
        encoder = cls(
            model,
            tokenizer,
            name=spec.name,
            max_length=max_length or spec.max_length,
            query_prefix=spec.query_prefix,
            passage_prefix=spec.passage_prefix,
            pooling=spec.pooling,
            normalize=spec.normalize,
            source=spec.path,
        )
        encoder.check_max_length(encoder.max_length)  # e.g. evaluate --max-length 100000 on 512 positions
        # inference mode by default (no dropout); the trainer switches the student to train()
        return encoder.to(device or default_device()).eval()

    def copy(self) -> "Encoder":
        """An independent copy (the student starts as a copy of the teacher)."""
        return copy.deepcopy(self)

    def save(self, folder: str | Path, **info) -> None:
        """Save as a normal Hugging Face folder (model as safetensors + tokenizer) that is also a
        sentence-transformers model (``modules.json``, pooling, Normalize, the prefixes as ``query`` /
        ``document`` prompts: :func:`~optical_lab.models.st_format.write_settings`), plus
        ``optical_lab_encoder.json``: the settings :meth:`settings` (pooling, normalisation, retrieval
        prefixes, maximum length) and ``info`` (e.g. the teacher it was distilled from), so
        ``Encoder.load(folder)`` gives back the same encoder, prefixes included."""
        folder = Path(folder)
        self.model.save_pretrained(folder, safe_serialization=True)
        self.tokenizer.save_pretrained(folder)
        write_settings(
            folder,
            dim=self.dim,
            pooling=self.pooling,
            normalize=self.normalize,
            query_prefix=self.query_prefix,
            passage_prefix=self.passage_prefix,
            max_length=self.max_length,
        )
        settings = {k: v for k, v in self.settings().items() if k != "source"} | info
        (folder / ENCODER_FILE).write_text(json.dumps(settings, indent=2, default=str) + "\n", encoding="utf-8")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    # ---------------------------------------------------------------- encoding
    def prefix(self, role: Role) -> str:
        """The string this backbone puts before a text of ``role`` ("" for MiniLM, "passage: " for e5)."""
        return role_prefix(self.query_prefix, self.passage_prefix, role or getattr(self, "default_role", None))

    def _with_prefix(self, texts: Sequence[str], role: Role) -> list[str]:
        prefix = self.prefix(role)
        return [prefix + t for t in texts]

    def tokenize(self, texts: Sequence[str], role: Role = None) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(
            self._with_prefix(texts, role),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
            return_special_tokens_mask=True,
        )
        return {k: v.to(self.device) for k, v in batch.items()}

    def tokens(self, texts: Sequence[str], role: Role = None) -> TokenBatch:
        """Contextual token embeddings (differentiable) of ``texts``."""
        return self.run(self.tokenize(texts, role))

    @property
    def unpadded(self) -> bool:
        """Whether :meth:`run` computes the dense layers on real tokens only (:mod:`.unpadded`): the
        :attr:`unpad` switch (None: :func:`~.unpadded.default_enabled`) and a model it supports."""
        setting = getattr(self, "unpad", None)  # an encoder pickled before the switch existed has none
        return (default_enabled() if setting is None else setting) and supports(self.model)

    def run(self, batch: dict[str, torch.Tensor]) -> TokenBatch:
        """Contextual token embeddings of a batch :meth:`tokenize` made (zero at pad positions when
        :attr:`unpadded`; no caller reads them)."""
        ids, attention = batch["input_ids"], batch["attention_mask"]
        if self.unpadded:
            hidden = unpadded_forward(self.model, ids, attention, getattr(self, "dropout_draws", DEFAULT_DRAWS))
        else:
            hidden = self.model(input_ids=ids, attention_mask=attention).last_hidden_state
        mask = attention.bool()
        return TokenBatch(hidden, mask, batch["special_tokens_mask"].bool() & mask, ids)

    def pool(self, batch: TokenBatch) -> torch.Tensor:
        """Sentence embeddings (B, d) of a token batch, with this backbone's pooling; unit length unless
        ``normalize`` is False. As sentence-transformers' ``Pooling``: ``mean`` averages every real token
        (special ones included), ``cls`` takes the first token, ``max`` the element-wise maximum over real tokens."""
        if self.pooling == "mean":
            return mean_pool(batch.embeddings, batch.mask, normalize=self.normalize)
        if self.pooling == "cls":
            pooled = batch.embeddings[:, 0]
        else:  # "max"
            lowest = torch.finfo(batch.embeddings.dtype).min
            pooled = batch.embeddings.masked_fill(~batch.mask.unsqueeze(-1), lowest).amax(1)
        return F.normalize(pooled, dim=-1) if self.normalize else pooled

    def forward(self, texts: Sequence[str], role: Role = None) -> torch.Tensor:
        """Pooled (normalised) sentence embeddings (differentiable), shape (B, d)."""
        return self.pool(self.tokens(texts, role))

    def pretokenize(self, texts: Sequence[str], role: Role = None, batch_size: int = 64) -> Tokenized:
        """``texts`` tokenized once, in the batches :meth:`encode` runs: for texts encoded again and again
        while the weights change (the trainer's dev sentences), so they are not re-tokenised each time."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)  # little padding per batch
        batches = [
            self.tokenize([texts[i] for i in order[start : start + batch_size]], role)
            for start in range(0, len(order), batch_size)
        ]
        return Tokenized(order, batches, batch_size, self.max_length)

    @torch.no_grad()
    def encode(
        self,
        texts: Sequence[str] | Tokenized,
        role: Role = None,
        batch_size: int = 64,
        progress: bool | str = False,
    ) -> torch.Tensor:
        """Pooled embeddings of many texts, on CPU, in input order.

        Texts are sorted by length so each batch carries little padding. ``texts`` may be a
        :meth:`pretokenize` result: then its own role and batches are used (``role`` must be None and
        ``batch_size`` is ignored), which gives the same embeddings without tokenising again.
        """
        if isinstance(texts, Tokenized):
            if role is not None:
                raise ValueError("pretokenized texts carry their role: pass it to pretokenize(), not to encode()")
            if texts.max_length != self.max_length:
                raise ValueError(
                    f"texts were tokenized at max_length {texts.max_length}, "
                    f"the encoder now truncates at {self.max_length}"
                )
            tokenized = texts
        else:
            tokenized = self.pretokenize(texts, role, batch_size)
        was_training = self.training
        self.eval()
        out = torch.empty(len(tokenized), self.dim)
        desc = progress if isinstance(progress, str) else f"encode {self.name}"
        starts = range(0, len(tokenized), tokenized.batch_size)
        for start, batch in zip(tqdm(starts, desc=desc, disable=not progress, leave=False), tokenized.batches):
            idx = tokenized.order[start : start + tokenized.batch_size]
            pooled = self.pool(self.run({k: v.to(self.device) for k, v in batch.items()}))
            out[idx] = pooled.float().cpu()
        self.train(was_training)
        return out


@dataclass
class Tokenized:
    """Texts tokenized once (:meth:`Encoder.pretokenize`): the length order and the batches of
    :meth:`Encoder.encode`."""

    order: list[int]  # text indices, longest first
    batches: list[dict[str, torch.Tensor]]  # tokenizer outputs, ``batch_size`` texts each, on the encoder's device
    batch_size: int
    max_length: int  # the truncation they were tokenized with

    def __len__(self) -> int:
        return len(self.order)


@contextlib.contextmanager
def as_role(encoder: Encoder, role: Role) -> Iterator[Encoder]:
    """Temporarily encode every text without an explicit role as ``role`` (its prefix added).

    Training objectives call ``encoder.tokens(texts)`` without a role; the trainer wraps them in
    ``as_role(student, "passage")`` so a prefixed backbone (e5) learns on the same inputs it is
    evaluated on (``TrainConfig.use_prefixes``)."""
    old = getattr(encoder, "default_role", None)
    encoder.default_role = role
    try:
        yield encoder
    finally:
        encoder.default_role = old
