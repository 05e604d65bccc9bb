"""Protocol v3's sweep: 12 settings per arm, the edge rule, scores averaged over the selection languages, the
dev distractor pool, optical-plain, and a tiny end-to-end sweep on synthetic data that resumes after a kill."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_suite import _write, data, make_data, tiny  # noqa: F401 (fixtures: the data folder, the tiny encoder)

from optical_lab.data import DataError
from optical_lab.data.mafand import dev_distractor_pool, mafand_family
from optical_lab.experiments import sweep as sweep_module
from optical_lab.experiments import sweep_design
from optical_lab.experiments.compare import read_method_config
from optical_lab.experiments.sweep import Sweep
from optical_lab.experiments.sweep_design import V3_ARMS, V3_GRIDS, ArmGrid, beyond, choose, slug, v3_rounds
from optical_lab.io import read_json, stored_exists
from optical_lab.methods.config import preset
from optical_lab.methods.registry import build_objective, method_spec

LANGS = ("quc", "kek", "mam")  # languages the package never names: the family comes from the data folder


def drive(score, methods=V3_ARMS):
    """Run v3's rounds with ``score(method, setting)`` as the dev score: (chosen, settings tried per arm)."""
    fake = SimpleNamespace(methods=list(methods), chosen={})
    tried = {}
    for round_ in v3_rounds(fake):
        for stage in round_:
            rows = [{"setting": s, "best_dev_mrr": score(stage.method, s)} for s in stage.settings]
            fake.chosen[stage.method] = choose(rows)["setting"]
            tried[stage.method] = stage.settings
    return fake.chosen, tried


MIDDLE_LR = {grid.method: grid.axes[0][1][1] for grid in V3_GRIDS}
TARGET = {"epsilon": 0.05, "temperature": 0.05, "batch_size": 16, "code_switch_ratio": 0.3, "aug_weight": 0.3}


def peaked(method, setting, **targets):
    """A dev score peaked (in log distance) at the middle lr of the arm's grid and at ``TARGET`` / ``targets``."""
    target = {"lr": MIDDLE_LR[method], **TARGET, **targets}
    return -sum(abs(math.log(setting[k] / v)) for k, v in target.items() if k in setting)


def test_v3_design_gives_every_trained_arm_12_settings_of_valid_keys():
    assert V3_ARMS == ("sentence-kd", "translate-train", "code-switch", "optical", "optical-plain", "optical+aug")
    chosen = {"optical": {"lr": 1e-3, "epsilon": 0.02, "ot_variant": "both"}}
    for grid in V3_GRIDS:
        settings = grid.settings(chosen)
        assert len(settings) == 12 and len({slug(s) for s in settings}) == 12, grid.method
        for setting in settings:
            preset("v3").replace(**setting)  # flat TrainConfig keys (what compare --method-config reads)
    aug = next(g for g in V3_GRIDS if g.method == "optical+aug").settings(chosen)
    assert all(s["epsilon"] == 0.02 and s["ot_variant"] == "both" and s["aug_method"] == "translate-train" for s in aug)
    assert all(s["batch_size"] == 32 for s in next(g for g in V3_GRIDS if g.method == "code-switch").settings({}))
    # a dev score peaked inside every axis of 3+ values and at the first value of every 2-value one: a 2-value
    # numeric axis always has its winner at an end, so it gets one extension (which loses: then interior)
    chosen, tried = drive(peaked)
    assert {m: len(t) for m, t in tried.items()} == {
        "sentence-kd": 13,  # + batch_size 8 (english_weight is never extended)
        "translate-train": 14,  # + temperature 0.1, batch_size 8
        "code-switch": 14,  # + temperature 0.1, ratio 0.15
        "optical": 13,  # + epsilon 0.1 (the cost variant is not numeric)
        "optical-plain": 12,
        "optical+aug": 12,
    }
    assert chosen["code-switch"] == {"lr": 3e-4, "temperature": 0.05, "code_switch_ratio": 0.3, "batch_size": 32}
    assert tried["code-switch"][12:] == (
        {"lr": 3e-4, "temperature": 0.1, "code_switch_ratio": 0.3, "batch_size": 32},
        {"lr": 3e-4, "temperature": 0.05, "code_switch_ratio": 0.15, "batch_size": 32},
    )


def test_edge_rule_extends_an_axis_until_interior_or_twice():
    # dev score grows with lr without end: lr is extended twice (x3 each), then the rule stops
    chosen, tried = drive(lambda m, s: peaked(m, s, lr=1.0), methods=["sentence-kd"])
    extra = tried["sentence-kd"][12:]
    assert [s["lr"] for s in extra if s["batch_size"] == 16] == [9e-3, 2.7e-2] and chosen["sentence-kd"]["lr"] == 2.7e-2
    # the winner's other values are kept; english_weight ({1, 0}) is never extended; batch 32 is tried again at
    # lr 9e-3, where the winner's own line had batch 16 only (interior is judged on that line)
    assert all(s["english_weight"] == 1.0 for s in extra) and [s["batch_size"] for s in extra] == [16, 8, 16, 32]
    # an extension that loses makes the winner interior: one extension, then stop
    chosen, tried = drive(lambda m, s: peaked(m, s, lr=3e-3) - (s["lr"] > 3e-3), methods=["sentence-kd"])
    assert [s["lr"] for s in tried["sentence-kd"][12:]] == [9e-3, 3e-3] and chosen["sentence-kd"]["lr"] == 3e-3
    # bounded axes: batch_size up to 64 only, the code-switch ratio inside (0, 1); downward by the same steps
    _, tried = drive(lambda m, s: peaked(m, s, batch_size=1e6), methods=["translate-train"])
    extra = tried["translate-train"][12:]
    assert [(s["temperature"], s["batch_size"]) for s in extra[:2]] == [(0.1, 32), (0.05, 64)]
    assert max(s["batch_size"] for s in extra) == 64  # then the winner's line at batch 64 (lr, temperature)
    _, tried = drive(lambda m, s: peaked(m, s, code_switch_ratio=10.0), methods=["code-switch"])
    assert sorted({s["code_switch_ratio"] for s in tried["code-switch"][12:]} - {0.6}) == [0.75, 0.9]
    _, tried = drive(lambda m, s: peaked(m, s, epsilon=1e-6), methods=["optical-plain"])
    assert sorted({s["epsilon"] for s in tried["optical-plain"][12:]}) == [0.0025, 0.005]
    assert beyond("lr", 3e-3, up=True) == 0.009 and beyond("aug_weight", 0.1, up=False) == 0.0333333
    assert beyond("batch_size", 64, up=True) is None and beyond("batch_size", 16, up=False) == 8
    assert beyond("code_switch_ratio", 0.9, up=True) is None and beyond("code_switch_ratio", 0.3, up=False) == 0.15
    # a second-stage arm needs its first-stage arm
    with pytest.raises(DataError, match="builds on optical"):
        drive(lambda m, s: 0.0, methods=["optical+aug"])


def test_edge_rule_judges_interior_on_the_winners_own_line():
    # optical-plain: dev MRR grows with lr and with a smaller epsilon, but lr 9e-3 collapses at epsilon 0.01. The
    # first round extends both axes from (3e-3, 0.01); epsilon 0.005 then wins at lr 3e-3, where no larger lr was
    # tried: on its own line lr is still at an end (9e-3 was tried at epsilon 0.01 only), so lr is extended there
    def score(method, s):
        return -1.0 if s["lr"] > 3.1e-3 and s["epsilon"] == 0.01 else math.log(s["lr"]) - math.log(s["epsilon"])

    chosen, tried = drive(score, methods=["optical-plain"])
    extra = [(s["lr"], s["epsilon"]) for s in tried["optical-plain"][12:]]
    assert extra[:2] == [(9e-3, 0.01), (3e-3, 0.005)]
    assert (9e-3, 0.005) in extra  # an axis-wide reading would call lr 3e-3 interior and never try it
    assert chosen["optical-plain"]["lr"] > 3e-3


def test_edge_rule_ties_keep_the_grid_order():
    grid = ArmGrid("x", (("lr", (1e-4, 3e-4)),))
    settings = grid.settings({})
    rows = [{"setting": s, "best_dev_mrr": 0.5 + 0.001 * i} for i, s in enumerate(settings)]
    assert choose(rows)["setting"] == {"lr": 1e-4}  # within the tie margin: the first


def test_optical_plain_trains_the_plain_cost_only():
    from optical_lab.data.bitext import Bitext

    pairs = Bitext(["a b", "c d"], ["e f", "g h"], "quc")
    objective = build_objective("optical-plain", preset("v3"), pairs)
    assert objective.variant == "plain" and method_spec("optical-plain").display == "OPTICAL-plain"
    with pytest.raises(DataError, match="plain cosine cost"):
        build_objective("optical-plain", preset("v3").replace(ot_variant="centred"), pairs)


# --------------------------------------------------------------------------------- synthetic data
def make_family(root: Path, langs=LANGS, train: int = 40, dev: int = 20) -> Path:
    """NTREX and SIB for each language (tests/tasks/test_suite.py) plus a MAFAND-MT pair; the second language's
    dev English repeats two of the first's (the pool must drop them for the first)."""
    for lang in langs:
        make_data(root, lang)
        pair = root / "mafand-mt" / f"en-{lang}"
        _write(pair / "train.en", [f"Training sentence {i} of {lang} about goat {i % 7}" for i in range(train)])
        _write(pair / f"train.{lang}", [f"{lang} tzij {i} chikop {i % 7}" for i in range(train)])
        english = [f"Dev sentence {i} of {lang} on market {i % 5}" for i in range(dev)]
        if lang == langs[1]:
            english[:2] = [f"Dev sentence {i} of {langs[0]} on market {i % 5}" for i in range(2)]
        _write(pair / "dev.en", english)
        _write(pair / f"dev.{lang}", [f"{lang} dev {i} k'ayij {i % 5}" for i in range(dev)])
    return root


@pytest.fixture
def family(data):  # noqa: F811 (test_suite's synthetic data folder in use, and the tiny encoder as "tiny")
    return make_family(data)


def test_family_and_distractor_pool_come_from_the_data_folder(family):
    assert mafand_family() == sorted(LANGS)
    first = LANGS[0]
    own = [f"Dev sentence {i} of {first} on market {i % 5}" for i in range(20)]
    pool = dev_distractor_pool(first, 30, own)
    assert len(pool) == len(set(pool)) == 30 and not set(pool) & set(own)  # the repeated two are dropped
    assert pool == dev_distractor_pool(first, 30, own)  # deterministic
    assert all(f" of {first} " not in text for text in pool)  # only the other languages' dev English
    with pytest.raises(DataError, match="distractors asked for"):
        dev_distractor_pool(first, 39, own)  # 40 other dev sentences, 2 of them this language's
    # a language without FLORES (SIB) coverage is not in the family
    (family / "sib-200" / "data" / "annotated" / f"{LANGS[2]}_Latn" / "labels.txt").unlink()
    for path in (family / "sib-200" / "data" / "annotated" / f"{LANGS[2]}_Latn").iterdir():
        path.unlink()
    (family / "sib-200" / "data" / "annotated" / f"{LANGS[2]}_Latn").rmdir()
    assert mafand_family() == sorted(LANGS[:2])


def small_v3(monkeypatch) -> None:
    """v3's structure on small grids: two stage-1 arms with an lr axis each, optical+aug in stage 2."""
    monkeypatch.setattr(
        sweep_design,
        "V3_GRIDS",
        (
            ArmGrid("sentence-kd", (("lr", (1e-4, 1e-3)),)),
            ArmGrid("optical", (("lr", (1e-4, 1e-3)),), fixed=(("epsilon", 0.05), ("ot_variant", "centred"))),
            ArmGrid("optical-plain", (("lr", (1e-4, 1e-3)),)),
            ArmGrid(
                "optical+aug",
                (("aug_weight", (1.0, 0.3)),),
                fixed=(("lr", 1e-3),),
                after="optical",
                inherits=("epsilon", "ot_variant"),
            ),
        ),
    )


def tiny_sweep(methods: list[str]) -> dict:
    """The options of a tiny v3 sweep of ``methods`` on the first two synthetic languages, with dev distractors."""
    return dict(
        design="v3",
        langs=list(LANGS[:2]),
        model="tiny",
        preset_name="tiny",
        methods=methods,
        threads=1,
        progress=False,
        dev_distractors=8,
    )


def test_tiny_v3_sweep_averages_languages_and_resumes_after_a_kill(family, tmp_path, monkeypatch):
    small_v3(monkeypatch)
    options = tiny_sweep(["sentence-kd", "optical", "optical-plain", "optical+aug"])
    out = tmp_path / "sweep"
    real = sweep_module.train_student
    calls = []

    def killed_after_five(*args, **kwargs):
        if len(calls) == 5:
            raise KeyboardInterrupt  # what a kill leaves: five finished cells, the sixth never written
        calls.append(kwargs["desc"])
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep_module, "train_student", killed_after_five)
    with pytest.raises(KeyboardInterrupt):
        Sweep(out, **options).run_all()
    finished = {p.parent: p.read_bytes() for p in out.glob("*/*/*/done.json")}
    assert len(finished) == 5 and not (out / "done.json").exists()

    resumed = []
    monkeypatch.setattr(sweep_module, "train_student", lambda *a, **k: resumed.append(k["desc"]) or real(*a, **k))
    chosen = Sweep(out, **options).run_all()
    assert not set(resumed) & set(calls)  # finished cells were read, not trained again
    assert all(path.joinpath("done.json").read_bytes() == data for path, data in finished.items())
    cells = sorted(out.glob("*/*/*/done.json"))
    assert len(cells) == len(calls) + len(resumed)

    # every cell: one language's folder, compacted, trained with the distractors; the score is the mean
    done = read_json(out / "done.json")
    assert done["cells"] == len(cells)
    for method, setting in chosen.items():
        scores = [read_json(out / method / slug(setting) / lang / "done.json")["best_dev_mrr"] for lang in LANGS[:2]]
        config = read_json(out / method / slug(setting) / LANGS[0] / "config.json")["train"]
        assert config["dev_distractors"] == 8 and config["steps"] == 3
        table = (out / "sweep.md").read_text()
        assert f"{sum(scores) / 2:.4f}" in table
    log = cells[0].parent / "train_log.jsonl"
    assert stored_exists(log) and not log.exists()  # compacted as it finished (the committed form)
    assert (
        read_json(out / "optical-plain" / slug(chosen["optical-plain"]) / LANGS[0] / "config.json")["train"][
            "ot_variant"
        ]
        == "plain"
    )
    # optical+aug inherits OPTICAL's choice; settings tried per arm are recorded
    assert chosen["optical+aug"]["ot_variant"] == "centred" and chosen["optical+aug"]["epsilon"] == 0.05
    tried = done["settings_tried"]
    assert tried["optical+aug"]["settings"] >= 2 and set(tried) == set(chosen)
    assert all(t["settings"] == 2 + len(t["extensions"]) for t in tried.values())
    assert "Settings tried per arm" in (out / "sweep.md").read_text()
    # chosen.json: the arms' settings and, beside them, what each arm tried (protocol v3), which compare ignores
    assert json.loads((out / "chosen.json").read_text()) == chosen | {"settings_tried": tried}
    assert read_method_config(str(out / "chosen.json"), list(chosen)) == chosen
    assert {p.name for p in out.glob("leakage_*.json")} == {
        f"leakage_{s}_{lang}.json" for s in ("train", "dev") for lang in LANGS[:2]
    }

    # a finished sweep is only read
    monkeypatch.setattr(sweep_module, "train_student", lambda *a, **k: pytest.fail("retrained"))
    assert Sweep(out, **options).run_all() == chosen


def test_a_v3_chosen_json_configures_the_v3_grid(tmp_path):
    """Every arm's v3 setting (flat keys) is accepted by compare --method-config on the v3 preset, and the grid's
    cells differ by arm; dev selection settings are shared by every arm of a fold."""
    from optical_lab.experiments.runner import ComparePlan, cell_fingerprint

    chosen = {"optical": {"lr": 1e-3, "epsilon": 0.02, "ot_variant": "both"}}
    chosen |= {grid.method: grid.settings(chosen)[-1] for grid in V3_GRIDS}
    (tmp_path / "chosen.json").write_text(json.dumps(chosen))
    arms = ["zero-shot", *V3_ARMS]
    config = read_method_config(str(tmp_path / "chosen.json"), arms)
    tried = {"settings_tried": {arm: {"settings": 13, "extensions": [chosen[arm]]} for arm in chosen}}
    (tmp_path / "chosen.json").write_text(json.dumps(chosen | tried))
    assert read_method_config(str(tmp_path / "chosen.json"), arms) == config  # the sweep's report configures nothing
    plan = ComparePlan(langs=["hau"], methods=arms, preset="v3", train=preset("v3"), method_config=config)
    assert plan.train_config("translate-train").batch_size == 32 and plan.train_config("code-switch").batch_size == 32
    assert (
        plan.train_config("optical-plain").ot_variant == "plain" and plan.train_config("optical").ot_variant == "both"
    )
    assert len({cell_fingerprint(plan, arm) for arm in arms}) == len(arms)
    with pytest.raises(DataError, match="dev_distractors"):
        ComparePlan(langs=["hau"], methods=["optical"], method_config={"optical": {"dev_distractors": 10}})


@pytest.mark.parametrize("returned", [True, False], ids=["returned-best-state", "raised"])
def test_a_diverged_setting_is_recorded_and_cannot_win_nor_stop_the_sweep(family, tmp_path, monkeypatch, returned):
    """A run whose loss or gradient goes non-finite (high lr, small epsilon, an extension of the edge rule) stops
    there: the trainer returns its best dev state flagged ``diverged`` (deviation 2; it raises ``TrainingDiverged``
    without dev selection). Either way the sweep records the setting as finished without a dev score (deviation
    2), the rule chooses among the others, and a resumed sweep reads it instead of crashing on it again."""
    from dataclasses import replace

    from optical_lab.methods.train_state import TrainingDiverged

    small_v3(monkeypatch)
    options = tiny_sweep(["sentence-kd"])
    real = sweep_module.train_student

    def diverges_at_high_lr(*args, **kwargs):
        config, folder = args[5], Path(kwargs["out_dir"])
        if config.lr == 1e-3 and args[4].lang == LANGS[1]:
            if returned:  # a best dev state that would win if the sweep scored it
                student, objective, result = real(*args, **kwargs)
                best = replace(result, best_dev_mrr=1.0, diverged="training diverged: loss nan", diverged_step=3)
                (folder / "checkpoint.pt").write_bytes(b"a state saved before the run diverged")
                return student, objective, best
            (folder / "checkpoint.pt").write_bytes(b"a state saved before the run diverged")
            raise TrainingDiverged("training diverged: loss nan, gradient norm nan")
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep_module, "train_student", diverges_at_high_lr)
    out = tmp_path / "sweep"
    chosen = Sweep(out, **options).run_all()
    assert chosen["sentence-kd"]["lr"] == 1e-4  # the diverged setting has no score: it cannot win
    cell = out / "sentence-kd" / slug({"lr": 1e-3}) / LANGS[1]
    done = read_json(cell / "done.json")
    assert done["best_dev_mrr"] is None and "diverged" in done["diverged"] and done["lang"] == LANGS[1]
    assert done.get("diverged_step") == (3 if returned else None)
    assert not (cell / "checkpoint.pt").exists()  # nothing of the diverged state is kept (or committed)
    assert "diverged" in (out / "sweep.md").read_text()
    monkeypatch.setattr(sweep_module, "train_student", lambda *a, **k: pytest.fail("retrained"))
    assert Sweep(out, **options).run_all() == chosen


def test_a_family_pair_without_a_dev_split_gives_no_distractors_and_breaks_no_other_language(family):
    """A user's MAFAND-style pair with a train split only joins the family (train + FLORES); the other languages'
    dev selection still draws its distractors from the dev English that exists, instead of failing on its files."""
    first, last = LANGS[0], LANGS[2]
    for side in ("en", last):
        (family / "mafand-mt" / f"en-{last}" / f"dev.{side}").unlink()
    assert last in mafand_family()
    pool = dev_distractor_pool(first, 15, [])
    assert len(pool) == 15 and all(f" of {LANGS[1]} " in text or f" of {first} " in text for text in pool)
