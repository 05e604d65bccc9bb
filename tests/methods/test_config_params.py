"""Settings declared once (data/params.param): validation, command-line flags and help derived from the
declaration; each objective's settings beside it; the one precedence rule; fingerprints unchanged."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from optical_lab.data.errors import DataError
from optical_lab.data.params import add_flag, declared, given, param, validate
from optical_lab.methods import registry
from optical_lab.methods.config import (
    ADDED_FIELDS,
    TrainConfig,
    apply_precedence,
    explicit_settings,
    preset,
    resolve,
    training_flags,
)
from optical_lab.methods.settings import CodeSwitchConfig, ContrastiveConfig, DistillConfig, OpticalConfig
from optical_lab.ot.spec import OTProblem, SinkhornSolver, SinkhornSpec

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Toy:
    """A settings class a newcomer might add: each field declared once."""

    rate: float = param(0.5, "how often", low=0.0, high=1.0, group="toy", flag=True)
    rounds: int = param(3, "how many rounds", low=1, group="toy", flag="--toy-rounds")
    cap: int | None = param(10, "most items", low=1, group="toy", flag=True, none_word="all", none_means="no cap")
    mode: Literal["fast", "slow"] = param("fast", "which mode", group="toy", flag=True)
    loud: bool = param(False, "say more", group="toy", flag=True)
    secret: float = param(1.0, "set in code only", low=0.0, positive=True)

    def __post_init__(self) -> None:
        validate(self)


def toy_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toy")
    group = parser.add_argument_group("toy")
    for field, info, kind in declared(Toy):
        if info.flag:
            add_flag(group, field.name, info, kind, field.default, dest=field.name)
    return parser


@pytest.mark.parametrize(
    "bad, expected",
    [
        ({"rate": 1.5}, ["rate = 1.5", "in [0.0, 1.0]", "e.g. --rate 0.5"]),
        ({"rate": float("nan")}, ["rate = nan", "finite"]),
        ({"rate": True}, ["rate = True"]),
        ({"rounds": 0}, ["rounds = 0", "integer >= 1", "e.g. --toy-rounds 3"]),
        ({"rounds": 2.0}, ["rounds = 2.0", "integer"]),
        ({"cap": 0}, ["cap = 0", "(or None: no cap)", "--cap 10"]),
        ({"mode": "medium"}, ["mode = 'medium'", "one of fast, slow", "use --mode fast or slow"]),
        ({"loud": "yes"}, ["loud = 'yes'", "true or false"]),
        ({"secret": 0.0}, ["secret = 0.0", "> 0.0", "e.g. Toy(secret=1.0)"]),  # no flag: named as code
    ],
)
def test_validation_is_derived_from_the_declaration(bad, expected):
    with pytest.raises(DataError) as error:
        Toy(**bad)
    for text in expected:
        assert text in str(error.value), (text, str(error.value))


def test_a_field_declared_once_is_a_validated_flag_with_its_group_default_and_help():
    assert Toy(cap=None).cap is None  # optional
    parser = toy_parser()
    text = parser.format_help()
    assert "toy:" in text  # its group
    for flag, shown in [
        ("--rate", "(default: 0.5)"),
        ("--toy-rounds", "(default: 3)"),
        ("--cap", "(default: 10); all: no cap"),
        ("--mode", "(default: fast)"),
        ("--loud", "(default: off)"),
    ]:
        assert flag in text and shown in text, (flag, text)
    assert "--secret" not in text
    args = parser.parse_args(["--rate", "0.25", "--toy-rounds", "7", "--cap", "all", "--no-loud"])
    assert (args.rate, args.rounds, given(args.cap), args.loud, args.mode) == (0.25, 7, None, False, None)
    # left out = None (not given); `all` = None given on purpose
    explicit = {k: given(v) for k, v in vars(args).items() if v is not None}
    assert explicit == {"rate": 0.25, "rounds": 7, "cap": None, "loud": False}
    assert Toy(**explicit).cap is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "medium"])  # argparse's choices, from the Literal
    with pytest.raises(DataError, match="--rate 0.5"):  # a value argparse accepts, the declaration refuses
        Toy(**{k: given(v) for k, v in vars(parser.parse_args(["--rate", "2"])).items() if v is not None})


def test_every_training_flag_has_a_group_help_and_a_shown_default():
    from optical_lab.experiments.compare import add_training_options

    parser = argparse.ArgumentParser()
    add_training_options(parser)
    text = parser.format_help()
    flags = training_flags()
    keys = [key for key, *_ in flags]
    assert len(keys) == len(set(keys))
    # today's flags keep their names, and the objectives' settings are offered too
    for flag in (
        "--lr",
        "--steps",
        "--batch-size",
        "--max-length",
        "--eval-every",
        "--patience",
        "--min-delta",
        "--max-train-pairs",
        "--epsilon",
        "--n-iters",
        "--ot-grad",
        "--early-exit",
        "--eps-scaling",
        "--aug-method",
        "--mixed-precision",
        "--prefixes",
        "--freeze-word-embeddings",
        "--temperature",
        "--ot-variant",
        "--english-weight",
        "--aug-weight",
    ):
        assert flag in text, flag
    for action in parser._actions:
        if action.dest in keys:
            assert action.default is None, action.dest  # so an explicit flag is known
            assert action.help and "(default: " in action.help, action.dest
    titles = {group.title for group in parser._action_groups}
    assert {"training: optimisation", "OPTICAL: OT problem", "OPTICAL: Sinkhorn solver", "OPTICAL+aug"} <= titles


def test_train_config_errors_name_the_setting_its_flag_and_a_valid_value():
    cases = [
        ({"batch_size": 0}, ["batch_size = 0", "--batch-size 16"]),
        ({"lr": -1.0}, ["lr = -1.0", "> 0.0", "--lr 0.0002"]),
        ({"max_train_pairs": 0}, ["max_train_pairs = 0", "(or None: no cap)", "--max-train-pairs 1000"]),
        ({"dict_iterations": 0}, ["dict_iterations = 0", "TrainConfig(dict_iterations=5)"]),
        ({"code_switch_ratio": 1.5}, ["code_switch_ratio = 1.5", "in [0.0, 1.0]", "--code-switch-ratio 0.5"]),
        ({"mixed_precision": "fp8"}, ["use --mixed-precision auto, no or bf16"]),
        ({"ot_variant": "odd"}, ["use --ot-variant plain, centred or both"]),
        ({"epsilon": 0.0}, ["epsilon = 0.0", "--epsilon 0.05"]),
        ({"ot_eps_scaling": 1.0}, ["eps_scaling = 1.0", "in (0.0, 1.0)", "--eps-scaling 0.5"]),
        ({"sinkhorn": 3}, ["sinkhorn = 3", "replace(epsilon="]),
    ]
    for bad, expected in cases:
        with pytest.raises(DataError) as error:
            TrainConfig().replace(**bad)
        for text in expected:
            assert text in str(error.value), (bad, text, str(error.value))


def test_the_aug_method_choices_are_the_registry(monkeypatch):
    assert registry.AUGMENTATIONS == ("translate-train", "code-switch")
    with pytest.raises(DataError, match="use --aug-method translate-train or code-switch"):
        TrainConfig(aug_method="optical")
    # a new augmentation method registered is a valid --aug-method, nothing else to edit
    monkeypatch.setattr(registry, "AUGMENTATIONS", (*registry.AUGMENTATIONS, "back-translate"))
    assert TrainConfig(aug_method="back-translate").aug_method == "back-translate"
    (choices,) = [info.choices() for key, _, info, _, _ in training_flags() if key == "aug_method"]
    assert "back-translate" in choices


def test_each_objective_owns_its_settings():
    owners = {spec.name: spec.settings for spec in registry.SPECS}
    assert owners["zero-shot"] == ()
    assert owners["translate-train"] == (ContrastiveConfig,)
    assert CodeSwitchConfig in owners["code-switch"] and OpticalConfig in owners["optical"]
    assert registry.AugConfig in owners["optical+aug"]
    own = {f.name for f in dataclasses.fields(TrainConfig)}
    declared_by = [DistillConfig, ContrastiveConfig, CodeSwitchConfig, OpticalConfig, registry.AugConfig]
    objective_fields = [f.name for cls in declared_by for f in dataclasses.fields(cls)]
    assert len(objective_fields) == len(set(objective_fields))  # one owner each
    assert set(objective_fields) <= own  # mixed into TrainConfig: one flat config, one fingerprint
    # what TrainConfig declares itself: the trainer's settings, no objective's
    trainer_fields = own - set(objective_fields)
    assert {
        "lr",
        "steps",
        "batch_size",
        "max_train_pairs",
        "eval_every",
        "patience",
        "checkpoint_every",
    } <= trainer_fields
    assert not trainer_fields & {"temperature", "ot_variant", "aug_method", "code_switch_ratio", "sinkhorn"}
    # every field of every settings class is declared (help, range, group)
    for cls in (TrainConfig, SinkhornSpec):
        assert len(declared(cls)) == len(dataclasses.fields(cls)), cls


def test_the_ot_problem_and_the_solver_are_two_objects_with_one_home_for_defaults():
    import inspect

    from optical_lab.ot.sinkhorn import sinkhorn

    spec = SinkhornSpec(epsilon=0.1, n_iters=200, centre=True)
    assert spec.problem == OTProblem(epsilon=0.1, centre=True)
    assert spec.solver == SinkhornSolver(n_iters=200)
    assert SinkhornSpec.of(spec.problem, spec.solver) == spec
    assert {f.name for f in dataclasses.fields(OTProblem)} == {"epsilon", "cost", "centre"}
    assert not {f.name for f in dataclasses.fields(OTProblem)} & {f.name for f in dataclasses.fields(SinkhornSolver)}
    # sinkhorn()'s keyword defaults are the solver's and the problem's
    defaults = {k: p.default for k, p in inspect.signature(sinkhorn).parameters.items()}
    for name, value in dataclasses.asdict(SinkhornSolver()).items():
        if name in defaults:
            assert defaults[name] == value, name
    assert defaults["epsilon"] == OTProblem().epsilon
    with pytest.raises(DataError, match="n_iters = 0"):
        SinkhornSolver(n_iters=0)


def test_settings_import_without_torch():
    code = (
        "import sys, optical_lab.methods.config, optical_lab.ot.spec, optical_lab.methods.registry;"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_precedence_explicit_flag_over_method_config_over_preset_over_default():
    method = {"lr": 1e-3, "epsilon": 0.02, "ot_variant": "both"}
    # default < preset
    assert resolve().steps == TrainConfig().steps == 24 and resolve("v2").steps == 300
    # preset < method config file
    assert resolve("v2", method).lr == 1e-3 and resolve("v2", method).sinkhorn.epsilon == 0.02
    # method config file < explicit flag
    chosen = resolve("v2", method, lr=5e-4, epsilon=0.1, steps=10)
    assert (chosen.lr, chosen.sinkhorn.epsilon, chosen.ot_variant, chosen.steps) == (5e-4, 0.1, "both", 10)
    # the comparison's form: the flags in `train`, dropped from the method config (with a note each)
    kept, notes = apply_precedence({"optical": method, "sentence-kd": {"lr": 1e-3}}, {"lr": 5e-4})
    assert kept == {"optical": {"epsilon": 0.02, "ot_variant": "both"}, "sentence-kd": {}}
    assert len(notes) == 2 and "lr = 0.0005 (command line) overrides 0.001" in notes[0]
    train = preset("v2").replace(lr=5e-4)
    assert train.replace(**kept["optical"]) == resolve("v2", method, lr=5e-4)
    # explicit_settings: what the command line gave (None = left out), flat keys
    assert explicit_settings({"lr": 5e-4, "steps": None, "ot_early_exit": False, "other": 1}) == {
        "lr": 5e-4,
        "ot_early_exit": False,
    }


def _compare_plan(argv):
    from optical_lab.cli import build_parser
    from optical_lab.experiments.compare import plan_from_args

    return plan_from_args(build_parser().parse_args(["compare", *argv]))


def test_an_explicit_flag_wins_over_the_method_config_file(tmp_path, capsys):
    chosen = tmp_path / "chosen.json"
    chosen.write_text(json.dumps({"optical": {"lr": 1e-3, "epsilon": 0.02, "ot_variant": "both"}}))
    base = ["--langs", "hau", "--methods", "zero-shot,optical", "--preset", "v2", "--method-config", str(chosen)]
    plan = _compare_plan(base)
    optical = plan.train_config("optical")
    assert (optical.lr, optical.sinkhorn.epsilon, optical.ot_variant, optical.steps) == (1e-3, 0.02, "both", 300)
    assert plan.train_config("zero-shot").lr == 2e-4  # the preset's (the default's)
    plan = _compare_plan([*base, "--lr", "5e-4", "--epsilon", "0.1", "--steps", "30", "--max-train-pairs", "all"])
    optical = plan.train_config("optical")
    assert (optical.lr, optical.sinkhorn.epsilon, optical.ot_variant, optical.steps) == (5e-4, 0.1, "both", 30)
    assert optical.max_train_pairs is None
    assert plan.method_config == {"optical": {"ot_variant": "both"}}  # the saved plan holds what ran
    err = capsys.readouterr().err
    assert "optical: lr = 0.0005 (command line) overrides 0.001" in err and "epsilon = 0.1" in err
    # --eps-scaling 0 and --no-early-exit are explicit too (None / False given on purpose)
    plan = _compare_plan([*base, "--eps-scaling", "0", "--early-exit"])
    assert plan.train.sinkhorn.eps_scaling is None and plan.train.sinkhorn.early_exit is True


def test_the_v2_makefile_command_still_finds_every_committed_cell():
    """protocol v2 was run with --method-config chosen.json and no overlapping flag: same cells."""
    from optical_lab.experiments.runner import cell_fingerprint

    makefile = (ROOT / "Makefile").read_text()
    langs = re.search(r"^V2_LANGS \?= (\S+)", makefile, flags=re.MULTILINE).group(1)
    recipe = re.search(r"^V2_MINILM = ((?:.*\\\n)*.*)$", makefile, flags=re.MULTILINE).group(1)
    arms = re.search(r"^V2_ARMS :?= (\S+)", makefile, flags=re.MULTILINE).group(1)
    argv = shlex.split(recipe.replace("\\\n", " ").replace("$(V2_LANGS)", langs).replace("$(V2_ARMS)", arms))
    saved = json.loads((ROOT / "results/v2-minilm/config.json").read_text())
    plan = _compare_plan(argv)
    plan.train = plan.train.replace(mixed_precision=saved["train"]["mixed_precision"])
    assert plan.method_config == saved["method_config"]
    assert plan.train.fingerprint() == saved["train_fingerprint"]
    assert TrainConfig.from_dict(saved["train"]).fingerprint_fields() == plan.train.fingerprint_fields()
    cells = sorted((ROOT / "results/v2-minilm/runs").glob("*/*/*/done.json"))
    assert len(cells) >= 90
    for done in cells:
        info = json.loads(done.read_text())
        assert cell_fingerprint(plan, info["method"]) == info["fingerprint"], done


@pytest.mark.parametrize("results", ["results/v2-me5-small", "results/compare-minilm", "results/v2-qald-minilm"])
def test_committed_configs_load_and_keep_their_fingerprints(results):
    saved = json.loads((ROOT / results / "config.json").read_text())
    config = TrainConfig.from_dict(saved["train"])
    assert config.fingerprint() == saved["train_fingerprint"]
    # a new run saves the layout it always did: top-level flat keys, the OT setting nested
    assert set(config.to_dict()) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert TrainConfig.from_dict(config.to_dict()) == config
    for settings in saved.get("method_config", {}).values():  # chosen.json's flat keys, in the flat layout
        fields = config.replace(**settings).fingerprint_fields()
        assert {key: fields.get(key, ADDED_FIELDS.get(key)) for key in settings} == settings  # legacy values left out
