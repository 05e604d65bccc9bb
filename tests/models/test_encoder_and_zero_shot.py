"""The packaged teacher: pooled + token outputs, and a real zero-shot run."""

from __future__ import annotations

import pytest
import torch

from optical_lab.data import load_ntrex
from optical_lab.models import mean_pool
from optical_lab.tasks.ntrex import evaluate_ntrex


def test_pooled_equals_mean_of_tokens(teacher):
    texts = ["A short sentence.", "A somewhat longer sentence with more tokens in it."]
    tokens = teacher.tokens(texts)
    assert tokens.embeddings.shape[:2] == tokens.mask.shape
    assert tokens.mask[0].sum() < tokens.mask[1].sum()  # padding is masked
    assert tokens.special[:, 0].all()  # [CLS]
    pooled = teacher(texts)
    assert torch.allclose(pooled, mean_pool(tokens.embeddings, tokens.mask), atol=1e-6)
    assert torch.allclose(pooled.norm(dim=-1), torch.ones(2), atol=1e-5)
    # batching and sorting by length do not change embeddings
    one_by_one = torch.cat([teacher.encode([t]) for t in texts])
    assert torch.allclose(teacher.encode(texts, batch_size=1), one_by_one, atol=1e-5)
    assert torch.allclose(teacher.encode(texts), pooled.detach(), atol=1e-5)


def test_pretokenized_encode_is_the_same_encode(teacher):
    """Dev sentences are tokenised once per training run: encoding the pretokenised batches gives exactly
    the embeddings of encoding the texts, also after the weights changed; a changed truncation is refused."""
    texts = [
        "Short one.",
        "A considerably longer sentence, with commas and more tokens.",
        "Middle length text.",
        "x",
        "Another sentence of some length here.",
    ]
    student = teacher.copy()
    tokenized = student.pretokenize(texts, role="passage", batch_size=2)
    assert len(tokenized) == 5 and len(tokenized.batches) == 3
    assert torch.equal(student.encode(tokenized), student.encode(texts, role="passage", batch_size=2))
    with torch.no_grad():
        student.model.get_input_embeddings().weight.mul_(1.5)  # a "training step"
    changed = student.encode(tokenized)
    assert torch.equal(changed, student.encode(texts, role="passage", batch_size=2))
    assert not torch.allclose(changed, teacher.encode(texts, role="passage", batch_size=2))
    with pytest.raises(ValueError, match="role"):
        student.encode(tokenized, role="passage")
    student.max_length = 8
    with pytest.raises(ValueError, match="max_length"):
        student.encode(tokenized)


def test_retriever_semantics(teacher):
    e = teacher.encode(["How old is the Eiffel tower?", "The Eiffel tower was built in 1889.", "Bananas are yellow."])
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2


def test_zero_shot_english_ceiling_beats_hausa(teacher):
    # a real run on a third of the documents: English (monolingual ceiling) must beat Hausa
    eng, hau = load_ntrex("eng"), load_ntrex("hau")
    docs = set(eng.documents()[::3])
    r_eng = evaluate_ntrex(eng, teacher, teacher, eval_docs=docs, sentence_task=False)["clir"].summary
    r_hau = evaluate_ntrex(hau, teacher, teacher, eval_docs=docs, sentence_task=False)["clir"].summary
    assert r_eng["MRR@10"] > 0.7
    assert r_eng["MRR@10"] > r_hau["MRR@10"] + 0.15


def test_cli_evaluate_writes_results(tmp_path, capsys):
    from optical_lab.cli import main

    assert (
        main(
            [
                "evaluate",
                "--tasks",
                "ntrex",
                "--langs",
                "eng",
                "--no-sentence-task",
                "--max-length",
                "64",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    for name in ("config.json", "environment.json", "ntrex.csv", "ntrex/eng/clir.run", "ntrex/eng/clir.per_query.csv"):
        assert (tmp_path / name).exists(), name
    assert not (tmp_path / "ntrex/eng/clir.topics.tsv").exists()  # no copy of the public data in a results folder
    assert "MRR@10" in capsys.readouterr().out


def test_cli_reports_data_errors(capsys):
    from optical_lab.cli import main

    assert main(["evaluate", "--langs", "xyz"]) == 1
    assert "unknown language code" in capsys.readouterr().err


def test_pooling_is_chosen_by_the_backbone(teacher):
    from optical_lab.models.registry import resolve_backbone

    assert resolve_backbone("minilm").pooling == "mean" and teacher.pooling == "mean"
    cls = type(teacher)(teacher.model, teacher.tokenizer, **{**teacher.settings(), "pooling": "cls"})
    texts = ["Welsh AMs worried about their title", "a second sentence"]
    tokens = teacher.tokens(texts)
    with torch.no_grad():
        torch.testing.assert_close(cls(texts), torch.nn.functional.normalize(tokens.embeddings[:, 0], dim=-1))
        assert not torch.allclose(cls(texts), teacher(texts))
    with pytest.raises(ValueError, match="pooling"):
        type(teacher)(teacher.model, teacher.tokenizer, pooling="weightedmean")
