"""Optimal transport for OPTICAL: costs, marginals, batched Sinkhorn, the token-plan problem, the loss.

Cuturi, "Sinkhorn Distances", NeurIPS 2013; Huang, Yu & Allan, "OPTICAL", WSDM 2023 (arXiv:2301.12566).

Names are loaded on first use (PEP 562, as :mod:`optical_lab`), so ``optical_lab.ot.spec`` — the OT
settings the command line is built from — imports without torch.
"""

from __future__ import annotations

import importlib

# public name -> the module that defines it
EXPORTS: dict[str, str] = {
    "cost_matrix": "optical_lab.ot.costs",
    "masked_marginals": "optical_lab.ot.marginals",
    "sinkhorn": "optical_lab.ot.sinkhorn",
    "SinkhornOutput": "optical_lab.ot.sinkhorn",
    "SinkhornSpec": "optical_lab.ot.spec",
    "OTProblem": "optical_lab.ot.spec",
    "SinkhornSolver": "optical_lab.ot.spec",
    "SinkhornConvergenceWarning": "optical_lab.ot.plan",
    "TokenPlan": "optical_lab.ot.plan",
    "token_plan": "optical_lab.ot.plan",
    "OTDistillationLoss": "optical_lab.ot.loss",
}
__all__ = list(EXPORTS)


def __getattr__(name: str):
    """Import a public name's module on first use, then keep the name here."""
    if name not in EXPORTS:
        raise AttributeError(f"module 'optical_lab.ot' has no attribute {name!r}")
    value = getattr(importlib.import_module(EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *EXPORTS])
