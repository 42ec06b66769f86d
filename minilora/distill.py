"""Knowledge distillation (Hinton et al., 2015): a small student learns from a trained teacher's soft targets.

Article 003 (§9.6) names distillation as one
of the methods LoRA is compared with; docs/compare.md runs that comparison.

The teacher's logits t, divided by a temperature T ≥ 1 before the softmax,
give a softened distribution p = softmax(t/T) that shows which wrong answers
the teacher finds nearly right. The student's logits s give q = softmax(s/T),
and the student minimises

    L = α · T² · KL(p ‖ q) + (1 − α) · CE(s, y)                    (Eq. 5 in docs/compare.md)

with the hard-label cross-entropy at T = 1. The T² keeps the two terms in
proportion as T changes. With KL averaged over N rows, its gradient with
respect to s is (q − p)/(T·N), and q − p itself shrinks like 1/T, so the soft
targets alone would fade as 1/T². With T², the gradient is (T/N)(q − p)
(Eq. 6), which tends to a limit that does not depend on T (Eq. 7).

Everything here is composed of existing differentiable ops (log_softmax,
mul, sub, sum), so no new primitive is needed.
"""

import math
import numbers

from minilora import backend
from minilora.autograd import ops
from minilora.autograd.engine import no_grad
from minilora.autograd.tensor import Tensor
from minilora.nn.module import Module, evaluating


def _check(temperature, alpha):
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0 (1 is the plain softmax; Hinton et al. use 2-20), got {temperature!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha, the weight of the soft-target term, must be in [0, 1], got {alpha!r}")


def soft_target_kl(student_logits, teacher_logits, temperature=1.0):
    """KL(softmax(t/T) ‖ softmax(s/T)), averaged over the rows (Eq. 4 in docs/compare.md).

    Logits are (..., C): every leading index is one row (PyTorch's
    ``kl_div(..., reduction="batchmean")`` over the flattened rows). The
    teacher's logits are constants: no gradient flows into them. Each term
    p·(log p − log q) is formed separately, so the result is exactly 0 when
    the two sets of logits are equal, and ≥ 0 always (Gibbs' inequality).
    """
    _check(temperature, 0.0)
    if not isinstance(student_logits, Tensor):
        raise TypeError(f"student_logits must be a Tensor (it is what trains), got {type(student_logits).__name__}")
    teacher = teacher_logits.detach() if isinstance(teacher_logits, Tensor) else Tensor(teacher_logits)
    if teacher.shape != student_logits.shape:
        raise ValueError(f"student and teacher logits must have the same shape (..., classes), got {student_logits.shape} and {teacher.shape}")
    scale = 1.0 / temperature  # a Python float, so float32 logits stay float32
    with no_grad():
        log_p = ops.log_softmax(teacher * scale, dim=-1).data  # teacher: log softmax(t/T), the same op as the student's
    p = backend.get_array_module(log_p).exp(log_p)
    log_q = ops.log_softmax(student_logits * scale, dim=-1)  # student: log softmax(s/T), in the graph
    rows = student_logits.size // student_logits.shape[-1]
    return -((log_q - log_p) * p).sum() * (1.0 / rows)  # Σ p (log p − log q) / rows


def distillation_loss(student_logits, teacher_logits, targets=None, temperature=2.0, alpha=0.5):
    """α·T²·KL(softmax(t/T) ‖ softmax(s/T)) + (1 − α)·CE(s, y) (Eq. 5 in docs/compare.md).

    ``student_logits`` and ``teacher_logits`` are (..., C); ``targets`` are the
    hard class labels (...) for the cross-entropy, which may be None only
    when ``alpha=1`` (soft targets alone). ``alpha=0`` is plain cross-entropy.
    The T² factor is explained in the module docstring and Eq. (6-7).
    """
    _check(temperature, alpha)
    if tuple(teacher_logits.shape) != tuple(student_logits.shape):  # checked even when alpha = 0 leaves the teacher unused
        raise ValueError(f"student and teacher logits must have the same shape (..., classes), got {student_logits.shape} and {tuple(teacher_logits.shape)}")
    if targets is None and alpha < 1.0:
        raise ValueError(f"targets (hard labels) are needed for the (1 - alpha) cross-entropy term; alpha={alpha} < 1")
    loss = None
    if alpha > 0.0:
        loss = soft_target_kl(student_logits, teacher_logits, temperature) * (alpha * temperature * temperature)
    if alpha < 1.0:
        hard = ops.cross_entropy(student_logits, targets) * (1.0 - alpha)
        loss = hard if loss is None else loss + hard
    return loss


class Distillation(Module):
    """A student trained on Eq. (5) against a frozen teacher: a drop-in model for ``Trainer``.

    Batches are ``(inputs, targets, *rest)`` as the Trainer passes them, for
    a language model ``(idx, targets)``, for a classifier ``(idx, labels,
    mask)``; both models are called as ``model(inputs, None, *rest)``. The
    student is this module's only submodule, so only its parameters train
    and count. The teacher runs in eval mode without a graph. In eval mode
    (the Trainer's evaluations) this is the student with its own loss.
    """

    def __init__(self, student, teacher, temperature=2.0, alpha=0.5):
        super().__init__()
        _check(temperature, alpha)
        if not isinstance(student, Module) or not isinstance(teacher, Module):
            raise TypeError(f"student and teacher must be minilora Modules, got {type(student).__name__} and {type(teacher).__name__}")
        if student is teacher:
            raise ValueError("the student and the teacher are the same model; distil into a separate (usually smaller) one")
        self.student = student
        object.__setattr__(self, "teacher", teacher)  # not a submodule: its parameters neither train nor count
        self.temperature, self.alpha = temperature, alpha

    def forward(self, inputs, targets=None, *rest):
        if not self.training or targets is None:
            return self.student(inputs, targets, *rest)
        with evaluating(self.teacher):
            teacher_logits, _ = self.teacher(inputs, None, *rest)
        student_logits, _ = self.student(inputs, None, *rest)
        return student_logits, distillation_loss(student_logits, teacher_logits, targets, self.temperature, self.alpha)
