"""Optimal transport for OPTICAL: costs, marginals, batched Sinkhorn, the token-plan problem, the loss.

Cuturi, "Sinkhorn Distances", NeurIPS 2013; Huang, Yu & Allan, "OPTICAL", WSDM 2023 (arXiv:2301.12566).

Names are loaded on first use (PEP 562, as :mod:`optical_lab`), so ``optical_lab.ot.spec`` — the OT
settings the command line is built from — imports without torch.
"""

from __future__ import annotations

from optical_lab import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, EXPORTS, globals())
