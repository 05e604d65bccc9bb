"""Optimal transport for OPTICAL: costs, marginals, batched Sinkhorn, the token-plan problem, the loss.

Cuturi, "Sinkhorn Distances", NeurIPS 2013; Huang, Yu & Allan, "OPTICAL", WSDM 2023 (arXiv:2301.12566).
"""

from optical_lab.ot.costs import cost_matrix
from optical_lab.ot.loss import OTDistillationLoss
from optical_lab.ot.marginals import masked_marginals
from optical_lab.ot.plan import SinkhornConvergenceWarning, TokenPlan, token_plan
from optical_lab.ot.sinkhorn import SinkhornOutput, sinkhorn
from optical_lab.ot.spec import SinkhornSpec

__all__ = [
    "cost_matrix",
    "masked_marginals",
    "sinkhorn",
    "SinkhornOutput",
    "SinkhornSpec",
    "SinkhornConvergenceWarning",
    "TokenPlan",
    "token_plan",
    "OTDistillationLoss",
]
