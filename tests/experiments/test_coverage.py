"""Dev text coverage: letters the evaluation text writes and the dev text never does; unknown word pieces."""

from __future__ import annotations

from transformers import AutoTokenizer

from optical_lab.experiments.coverage import Coverage, dev_text, document, letter_gap, letters, tokenizer_coverage
from optical_lab.models.registry import minilm_path


def test_letter_gap_names_the_hooked_letters():
    dev = ["Ya ce kasar da yake", "Dan sanda"]
    evaluation = ["ƙasar ɗan sanda", "ya ce", "Ɓaka ƙasa"]
    gap = letter_gap(dev, evaluation)
    assert dict(gap["top"]) == {"ƙ": 2 / 3, "ɗ": 1 / 3, "ɓ": 1 / 3}  # case folded: Ɓ counts as ɓ
    assert gap["missing_letters"] == 3 and gap["sentences_with_missing"] == 2 / 3
    assert gap["letter_share_missing"] == 4 / sum(len(letters(s)) for s in evaluation)
    assert letters("e\u0301!") == ["é"]  # NFC: a decomposed accent is the composed letter; punctuation is no letter


def test_minilm_maps_hooked_letters_to_unk():
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
    plain = tokenizer_coverage(tokenizer, ["kasar dan sanda"])
    hooked = tokenizer_coverage(tokenizer, ["ƙasar ɗan sanda"])
    assert plain["unk_pieces"] == 0 and hooked["unk_words"] == 2 / 3 and hooked["unk_pieces"] > 0


def test_luo_dev_text_is_read_from_its_upstream_folder():
    text = dev_text("luo")
    assert text is not None and len(text) > 100 and all(isinstance(t, str) for t in text[:5])
    assert dev_text("xxx") is None


def test_document_lists_every_row():
    cov = Coverage(
        [{"lang": "hau", "text": "NTREX", **letter_gap(["a"], ["ƙa"])}],
        [
            {
                "lang": "hau",
                "text": "NTREX",
                "backbone": "minilm",
                "sentences": 1,
                "unk_pieces": 0.5,
                "unk_words": 1.0,
                "pieces_per_word": 2.0,
            }
        ],
    )
    text = document(cov)
    assert "| hau | NTREX | 1 | 1 | 100.0% |" in text and "ƙ (U+0199) 100.0%" in text and "| 50.00% |" in text
