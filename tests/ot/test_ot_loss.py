"""OTDistillationLoss: student-only gradients, special tokens, weights, empty sentences."""

from __future__ import annotations

import pytest
import torch

from optical_lab.ot import OTDistillationLoss, cost_matrix, masked_marginals, sinkhorn


def batch(seed: int = 0, B: int = 3, n: int = 6, m: int = 5, d: int = 8):
    g = torch.Generator().manual_seed(seed)
    teacher = torch.randn(B, n, d, generator=g, requires_grad=True)
    student = torch.randn(B, m, d, generator=g, requires_grad=True)
    t_mask = torch.arange(n)[None] < torch.tensor([6, 4, 2])[:, None]
    s_mask = torch.arange(m)[None] < torch.tensor([5, 5, 3])[:, None]
    return teacher, t_mask, student, s_mask


@pytest.mark.parametrize("grad", ["envelope", "autodiff"])
def test_loss_backprops_only_into_student(grad):
    teacher, t_mask, student, s_mask = batch()
    loss_fn = OTDistillationLoss(grad=grad)
    loss = loss_fn(teacher, t_mask, student, s_mask)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert teacher.grad is None
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert (student.grad[~s_mask] == 0).all()  # padded student tokens get no gradient


def test_loss_equals_mean_transport_cost_of_the_pipeline():
    teacher, t_mask, student, s_mask = batch(1)
    loss = OTDistillationLoss(epsilon=0.05, n_iters=50)(teacher, t_mask, student, s_mask)
    C = cost_matrix(teacher, student, t_mask, s_mask)
    out = sinkhorn(C, masked_marginals(t_mask), masked_marginals(s_mask), epsilon=0.05, n_iters=50)
    torch.testing.assert_close(loss, out.transport_cost.mean())


def test_envelope_gradient_wrt_student_matches_fixed_plan():
    teacher, t_mask, student, s_mask = batch(2)
    loss_fn = OTDistillationLoss(grad="envelope")
    loss_fn(teacher, t_mask, student, s_mask).backward()
    plan = loss_fn.last_output.plan
    student2 = student.detach().clone().requires_grad_(True)
    ((plan * cost_matrix(teacher.detach(), student2, t_mask, s_mask)).sum((1, 2)).mean()).backward()
    torch.testing.assert_close(student.grad, student2.grad)


def test_special_tokens_are_excluded_from_the_marginals():
    teacher, t_mask, student, s_mask = batch(3)
    t_ids = torch.tensor([[101, 5, 6, 7, 8, 102], [101, 5, 102, 0, 0, 0], [101, 102, 0, 0, 0, 0]])
    s_ids = torch.tensor([[0, 9, 9, 9, 2], [0, 9, 9, 9, 2], [0, 9, 2, 1, 1]])
    t_special = torch.isin(t_ids, torch.tensor([0, 101, 102]))  # what the tokenizer's special-token mask gives
    s_special = torch.isin(s_ids, torch.tensor([0, 1, 2]))
    loss_fn = OTDistillationLoss(exclude_special=True)
    loss = loss_fn(teacher, t_mask, student, s_mask, teacher_special=t_special, student_special=s_special)
    plan = loss_fn.last_output.plan
    assert (plan.sum(2)[t_special | ~t_mask] == 0).all() and (plan.sum(1)[s_special | ~s_mask] == 0).all()
    # third teacher sentence is only [CLS] [SEP]: empty problem -> zero plan, contributes 0 to the mean
    assert loss_fn.last_output.transport_cost[2] == 0 and torch.isfinite(loss)
    kept = OTDistillationLoss(exclude_special=False)(teacher, t_mask, student, s_mask, t_special, s_special)
    assert not torch.isclose(loss, kept)


def test_token_weights_are_used():
    teacher, t_mask, student, s_mask = batch(4)
    idf_t, idf_s = torch.rand(3, 6) + 0.1, torch.rand(3, 5) + 0.1
    loss_fn = OTDistillationLoss(n_iters=1000, tol=1e-6)
    loss_fn(teacher, t_mask, student, s_mask, teacher_weights=idf_t, student_weights=idf_s)
    plan = loss_fn.last_output.plan
    torch.testing.assert_close(plan.sum(2), masked_marginals(t_mask, idf_t), atol=1e-5, rtol=0)
    torch.testing.assert_close(plan.sum(1), masked_marginals(s_mask, idf_s), atol=1e-5, rtol=0)


def test_all_padding_student_gives_finite_zero_contribution():
    teacher, t_mask, student, s_mask = batch(5)
    s_mask = s_mask.clone()
    s_mask[1] = False
    loss_fn = OTDistillationLoss(grad="autodiff")
    loss = loss_fn(teacher, t_mask, student, s_mask)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all() and (student.grad[1] == 0).all()
    assert loss_fn.last_output.transport_cost[1] == 0


def test_the_loss_is_the_token_plan_and_counts_unconverged_problems():
    from optical_lab.ot import SinkhornConvergenceWarning, SinkhornSpec, token_plan

    teacher, t_mask, student, s_mask = batch(4)
    spec = SinkhornSpec(epsilon=0.05, n_iters=500, tol=1e-6)
    loss_fn = OTDistillationLoss(spec)
    loss = loss_fn(teacher, t_mask, student, s_mask)
    plan = token_plan(teacher, t_mask, student, s_mask, spec)
    torch.testing.assert_close(loss, plan.output.transport_cost.mean())
    assert plan.not_converged == 0 and loss_fn.not_converged == 0 and loss_fn.problems == len(teacher)
    # one iteration cannot reach the tolerance: a POT-style warning, and the loss counts the problems
    short = OTDistillationLoss(spec, n_iters=1)
    with pytest.warns(SinkhornConvergenceWarning, match="did not converge"):
        short(teacher, t_mask, student, s_mask)
    assert short.spec.n_iters == 1 and short.not_converged == short.problems == len(teacher)
    with pytest.raises(ValueError, match="epsilon"):
        SinkhornSpec(epsilon=0.0)
