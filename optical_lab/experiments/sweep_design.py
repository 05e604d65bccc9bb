"""The designs of `optical-lab sweep`: which settings are trained, in which rounds, and how one is chosen.

A :class:`SweepDesign` is a declared list of rounds. Each round is a list of :class:`Stage` (an arm and the
settings it tries at that point, in grid order); the stages of one round are independent (``--jobs N`` trains
their settings at once) and a later round may read the choices of the earlier ones (``sweep.chosen``).
:class:`~.sweep.Sweep` runs a design; it trains every setting on every selection language at seed 0 and scores
a setting by the mean over those languages of its best dev MRR (one language: that language's). The rule,
:func:`choose`: the highest score wins; a setting within :data:`TIE` of the best is tied and the first in grid
order is taken.

**v2** (``docs/protocol_v2.md``, one tuning language, default ``hau``): three stages, each reading the one
before —

1. learning rate per trained arm from :data:`LR_GRID`; an arm whose best lr is the grid's largest also tries
   :data:`LR_EDGE`, once;
2. OPTICAL at its chosen lr: cost variant (:data:`VARIANTS`) x epsilon (:data:`EPSILONS`), then the English
   term on/off (:data:`ENGLISH_WEIGHTS`) at the chosen variant;
3. optical+aug at its chosen lr with OPTICAL's chosen settings: the augmentation weight (:data:`AUG_WEIGHTS`).

**v3** (``docs/protocol_v3.md``, selection languages ``ibo, swa, yor`` by default): the same budget for every
trained arm — :data:`V3_GRIDS`, 12 settings each over the arm's own important hyper-parameters (optical+aug in
a second stage, at OPTICAL's chosen epsilon and cost variant) — every setting trained with the ``v3`` preset
(dev plateau under its step cap). The **edge rule** (:func:`edge_extensions`): when the winner sits at an end
of a numeric axis that has at least 2 values (among the settings tried at the winner's other values: its own
line), that axis gets one value beyond it (:data:`EDGE_STEPS`) at the
winner's other values, and the arm is chosen again over everything it tried; repeated until the winner is
interior or :data:`MAX_EXTENSIONS` extensions of that axis were made (``english_weight`` is never extended:
0 and 1 are its only meaningful values). OPTICAL's Sinkhorn iterations are not tuned: the v3 preset's solver
runs each problem to tolerance (``SinkhornSpec``: iteration cap, early exit, epsilon scaling), so the
iteration count is not a hyper-parameter of the result but a cost.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

from ..data.errors import DataError

TIE = 0.002
# chosen.json's key for what each arm tried (a design with selection languages, v3: ``{arm: {"settings": n,
# "extensions": [setting, ...]}}``, protocol v3's "Fair tuning"); a report beside the arms, not an arm
SETTINGS_TRIED = "settings_tried"


def arm_settings(chosen: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The arms' settings of a ``chosen.json`` (what ``compare --method-config`` applies): without its
    :data:`SETTINGS_TRIED` report, so a file with it configures the very cells one without it does."""
    return {arm: settings for arm, settings in chosen.items() if arm != SETTINGS_TRIED}


class Sweep(Protocol):
    """What a design's rounds read of the running sweep (:class:`.sweep.Sweep`): its arms and the choices so far."""

    methods: list[str]
    chosen: dict[str, dict[str, Any]]


# ----------------------------------------------------------------------------------------------- v2
LR_GRID = (1e-5, 3e-5, 1e-4, 3e-4)
LR_EDGE = 1e-3  # tried once when a method's best lr is the grid's largest (deviation 2, protocol_v2.md)
VARIANTS = ("plain", "centred", "both")
EPSILONS = (0.05, 0.02, 0.1)
ENGLISH_WEIGHTS = (1.0, 0.0)
AUG_WEIGHTS = (1.0, 0.1)
TRAINED = ("sentence-kd", "translate-train", "code-switch", "optical", "optical+aug")  # v2's trained arms


@dataclass(frozen=True)
class Stage:
    """One arm's settings at one point of a sweep, in grid order (the tie rule's order)."""

    name: str  # e.g. "1-lr", "1-grid", "1-edge": recorded in each cell's done.json
    method: str
    settings: tuple[dict[str, Any], ...]


def slug(setting: dict[str, Any]) -> str:
    """Folder name of a setting, e.g. ``lr3e-05`` or ``lr0.0001-ot_variant=centred-epsilon=0.02``."""
    return "-".join(
        f"lr{v:g}" if k == "lr" else f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in setting.items()
    )


def choose(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The registered rule: best dev MRR, ties (within ``TIE``) to the first in grid order."""
    scored = [r for r in rows if r["best_dev_mrr"] is not None]
    if not scored:
        raise ValueError("no setting has a dev score")
    best = max(r["best_dev_mrr"] for r in scored)
    return next(r for r in scored if r["best_dev_mrr"] >= best - TIE)


def v2_rounds(sweep: Sweep) -> Iterator[list[Stage]]:
    """Protocol v2's three stages (module doc), reading ``sweep.chosen`` between rounds."""
    methods = sweep.methods
    yield [Stage("1-lr", m, tuple({"lr": lr} for lr in LR_GRID)) for m in methods]
    # best at the grid's edge: one step further, then choose again
    yield [
        Stage("1-lr", m, tuple({"lr": lr} for lr in (*LR_GRID, LR_EDGE)))
        for m in methods
        if sweep.chosen[m]["lr"] == LR_GRID[-1]
    ]
    if "optical" in methods:
        lr = sweep.chosen["optical"]["lr"]
        grid = tuple({"lr": lr, "ot_variant": v, "epsilon": e} for v in VARIANTS for e in EPSILONS)
        yield [Stage("2-variant", "optical", grid)]
        best = sweep.chosen["optical"]
        yield [Stage("2-english", "optical", tuple({**best, "english_weight": w} for w in ENGLISH_WEIGHTS))]
        if "optical+aug" in methods:
            optical = {k: v for k, v in sweep.chosen["optical"].items() if k != "lr"}
            lr = sweep.chosen["optical+aug"]["lr"]
            yield [
                Stage("3-aug-weight", "optical+aug", tuple({"lr": lr, **optical, "aug_weight": w} for w in AUG_WEIGHTS))
            ]


def v2_grids() -> dict[str, Any]:
    return {
        "lr": LR_GRID,
        "lr_edge": LR_EDGE,
        "ot_variant": VARIANTS,
        "epsilon": EPSILONS,
        "english_weight": ENGLISH_WEIGHTS,
        "aug_weight": AUG_WEIGHTS,
    }


# ----------------------------------------------------------------------------------------------- v3
@dataclass(frozen=True)
class ArmGrid:
    """One arm's v3 grid: the cartesian product of ``axes`` (first axis outermost: that is grid order) with
    ``fixed`` values; ``inherits`` are keys taken from ``after``'s chosen setting (a second-stage arm)."""

    method: str
    axes: tuple[tuple[str, tuple[Any, ...]], ...]
    fixed: tuple[tuple[str, Any], ...] = ()
    after: str | None = None
    inherits: tuple[str, ...] = ()

    def settings(self, chosen: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], ...]:
        inherited = {key: chosen[self.after][key] for key in self.inherits} if self.after else {}
        names = [name for name, _ in self.axes]
        return tuple(
            {**dict(zip(names, values)), **inherited, **dict(self.fixed)}
            for values in itertools.product(*(values for _, values in self.axes))
        )


V3_GRIDS: tuple[ArmGrid, ...] = (
    ArmGrid("sentence-kd", (("lr", (3e-4, 1e-3, 3e-3)), ("batch_size", (16, 32)), ("english_weight", (1.0, 0.0)))),
    ArmGrid("translate-train", (("lr", (1e-4, 3e-4, 1e-3)), ("temperature", (0.05, 0.01)), ("batch_size", (16, 32)))),
    ArmGrid(
        "code-switch",
        (("lr", (1e-4, 3e-4, 1e-3)), ("temperature", (0.05, 0.01)), ("code_switch_ratio", (0.3, 0.6))),
        fixed=(("batch_size", 32),),
    ),
    ArmGrid("optical", (("lr", (3e-4, 1e-3, 3e-3)), ("epsilon", (0.05, 0.02)), ("ot_variant", ("centred", "both")))),
    ArmGrid("optical-plain", (("lr", (3e-4, 1e-3, 3e-3)), ("epsilon", (0.1, 0.05, 0.02, 0.01)))),
    ArmGrid(
        "optical+aug",
        (("lr", (1e-4, 3e-4, 1e-3)), ("aug_weight", (0.1, 0.3, 1.0, 3.0))),
        fixed=(("aug_method", "translate-train"),),
        after="optical",
        inherits=("epsilon", "ot_variant"),
    ),
)
V3_ARMS = tuple(grid.method for grid in V3_GRIDS)
# axis -> ("x", factor) or ("+", step): one value beyond an end; (low, high, closed) bounds the new value
EDGE_STEPS: dict[str, tuple[str, float]] = {
    "lr": ("x", 3),
    "epsilon": ("x", 2),
    "temperature": ("x", 2),
    "batch_size": ("x", 2),
    "code_switch_ratio": ("+", 0.15),
    "aug_weight": ("x", 3),
}
EDGE_BOUNDS: dict[str, tuple[float, float, bool]] = {"batch_size": (8, 64, True), "code_switch_ratio": (0, 1, False)}
MAX_EXTENSIONS = 2  # per axis and arm


def beyond(axis: str, value: Any, up: bool) -> Any | None:
    """The value one edge step beyond ``value`` on ``axis`` (up or down), None when it leaves the axis's bounds."""
    kind, by = EDGE_STEPS[axis]
    new = (value * by if up else value / by) if kind == "x" else (value + by if up else value - by)
    new = int(round(new)) if isinstance(value, int) else float(f"{new:.6g}")  # 3e-3 x 3 = 0.009, not 0.009000000001
    low, high, closed = EDGE_BOUNDS.get(axis, (0.0, float("inf"), False))
    inside = low <= new <= high if closed else low < new < high
    return new if inside else None


def edge_extensions(
    grid: ArmGrid, winner: dict[str, Any], tried: tuple[dict[str, Any], ...], extended: dict[str, int]
) -> list[dict[str, Any]]:
    """The settings the edge rule adds after ``winner`` was chosen among ``tried``: for every numeric axis of
    ``grid`` with at least 2 values (``english_weight`` excluded: :data:`EDGE_STEPS` names the axes) on which the
    winner sits at an end of the values tried *on its own line* (the tried settings equal to the winner on every
    other key: "interior" means a value on each side of it was tried at the winner's other values, protocol v3
    deviation 3), one value beyond it at the winner's other values, unless that axis was extended
    :data:`MAX_EXTENSIONS` times already (``extended`` counts them, updated here) or the value leaves its bounds."""
    new = []
    for axis, values in grid.axes:
        if axis not in EDGE_STEPS or len(values) < 2 or extended.get(axis, 0) >= MAX_EXTENSIONS:
            continue
        line = [s for s in tried if all(s.get(k) == v for k, v in winner.items() if k != axis)]
        ends = sorted({s[axis] for s in line})
        if winner[axis] not in (ends[0], ends[-1]):
            continue
        value = beyond(axis, winner[axis], up=winner[axis] == ends[-1])
        setting = {**winner, axis: value}
        if value is None or setting in tried or setting in new:
            continue
        extended[axis] = extended.get(axis, 0) + 1
        new.append(setting)
    return new


def v3_rounds(sweep: Sweep) -> Iterator[list[Stage]]:
    """Stage 1: every arm's grid at once, then edge-rule rounds until no arm extends; stage 2 the same for the
    arms that build on a stage-1 choice (optical+aug on OPTICAL's). Each stage lists everything the arm tried
    so far (the grid, then its extensions, in the order tried): the choice is made over all of it."""
    grids = [grid for grid in V3_GRIDS if grid.method in sweep.methods]
    missing = sorted({g.after for g in grids if g.after and g.after not in sweep.methods})
    if missing:
        raise DataError(
            f"sweep design v3: {', '.join(g.method for g in grids if g.after in missing)} builds on "
            f"{', '.join(missing)}, which --methods leaves out",
            fix=f"add {', '.join(missing)} to --methods",
        )
    tried: dict[str, tuple[dict[str, Any], ...]] = {}
    extended: dict[str, dict[str, int]] = {}
    for number, stage in enumerate(([g for g in grids if not g.after], [g for g in grids if g.after]), start=1):
        if not stage:
            continue
        for grid in stage:
            tried[grid.method] = grid.settings(sweep.chosen)
        yield [Stage(f"{number}-grid", grid.method, tried[grid.method]) for grid in stage]
        while True:
            round_ = []
            for grid in stage:
                more = edge_extensions(
                    grid, sweep.chosen[grid.method], tried[grid.method], extended.setdefault(grid.method, {})
                )
                if more:
                    tried[grid.method] += tuple(more)
                    round_.append(Stage(f"{number}-edge", grid.method, tried[grid.method]))
            if not round_:
                break
            yield round_


def v3_grids() -> dict[str, Any]:
    return {
        "arms": {
            grid.method: {
                "axes": {name: list(values) for name, values in grid.axes},
                "fixed": dict(grid.fixed),
                **({"after": grid.after, "inherits": list(grid.inherits)} if grid.after else {}),
            }
            for grid in V3_GRIDS
        },
        "edge_steps": EDGE_STEPS,
        "edge_bounds": EDGE_BOUNDS,
        "max_extensions": MAX_EXTENSIONS,
    }


# ----------------------------------------------------------------------------------------------- designs
@dataclass(frozen=True)
class SweepDesign:
    """A declared sweep: its rounds, default arms, selection languages and preset, and the cell layout
    (``per_language``: ``<method>/<setting>/<lang>/``; otherwise ``<method>/<setting>/``, one language)."""

    name: str
    rounds: Callable[[Sweep], Iterator[list[Stage]]]
    grids: Callable[[], dict[str, Any]]
    methods: tuple[str, ...]
    langs: tuple[str, ...]
    preset: str
    per_language: bool
    stages: tuple[str, ...]  # stage names in run order (the order of every sweep table)


DESIGNS: dict[str, SweepDesign] = {
    "v2": SweepDesign(
        "v2", v2_rounds, v2_grids, TRAINED, ("hau",), "v2", False, ("1-lr", "2-variant", "2-english", "3-aug-weight")
    ),
    "v3": SweepDesign(
        "v3", v3_rounds, v3_grids, V3_ARMS, ("ibo", "swa", "yor"), "v3", True, ("1-grid", "1-edge", "2-grid", "2-edge")
    ),
}
STAGES = tuple(stage for design in DESIGNS.values() for stage in design.stages)
