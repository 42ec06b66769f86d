"""The notebooks' exercises: every check passes on its solution, fails on a wrong answer, and waits on a stub.

The checks live in notebooks/exercises.py and the solutions in notebooks/solutions/,
one file per notebook. Running a solution file runs every check of its notebook on
the right answer (each call is asserted). Below, each check also gets a deliberately
wrong answer and must raise WrongAnswer with a hint.
"""

import json
import math
import pathlib
import re
import runpy
import sys

import numpy as np
import pytest

NOTEBOOKS = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
SOLUTIONS = NOTEBOOKS / "solutions"
sys.path.insert(0, str(NOTEBOOKS))  # `import exercises`, as the notebooks do (their working directory)

import exercises  # noqa: E402 (found through the path set just above)

CHECKS = sorted(name for name in dir(exercises) if name.startswith("check_"))


def _cells(notebook):
    return json.loads(notebook.read_text(encoding="utf-8"))["cells"]


def _exercise_headings(notebook):
    return [line for cell in _cells(notebook) if cell["cell_type"] == "markdown"
            for line in "".join(cell["source"]).splitlines() if re.match(r"#+ Exercise\b", line)]


@pytest.mark.parametrize("notebook", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_every_notebook_ends_with_three_to_five_exercises_and_has_a_solution_file(notebook):
    headings = _exercise_headings(notebook)
    assert 3 <= len(headings) <= 5, f"{notebook.name} has {len(headings)} exercise headings"
    assert (SOLUTIONS / f"{notebook.stem}.py").exists(), f"no solutions/{notebook.stem}.py"
    cells = _cells(notebook)
    first = min(i for i, cell in enumerate(cells) if "".join(cell["source"]).lstrip().startswith("### Exercise"))
    later_headings = [line for cell in cells[first:] if cell["cell_type"] == "markdown"
                      for line in "".join(cell["source"]).splitlines() if line.startswith("#")]
    assert all(re.match(r"#+ Exercise", line) for line in later_headings), f"the exercises come last: {later_headings}"


@pytest.mark.parametrize("solution", sorted(SOLUTIONS.glob("*.py")), ids=lambda p: p.name)
def test_solution_passes_every_check_of_its_notebook(solution, capsys):
    notebook = NOTEBOOKS / f"{solution.stem}.ipynb"
    runpy.run_path(str(solution), run_name="__main__")  # each check call in it is asserted
    called = set(re.findall(r"\b(check_\w+)\(", solution.read_text()))
    if notebook.exists():  # a notebook's solution file answers every check its notebook calls
        in_notebook = {name for cell in _cells(notebook) if cell["cell_type"] == "code"
                       for name in re.findall(r"\b(check_\w+)\(", "".join(cell["source"]))}
        assert in_notebook <= called, f"{solution.name} does not answer {sorted(in_notebook - called)}"
    assert capsys.readouterr().out.count("Correct.") == len(called)


def _wrong_value_class():
    Value = runpy.run_path(str(SOLUTIONS / "00_autograd.py"))["Value"]  # a fresh class, ours to break
    Value.relu = lambda self: self  # forgets relu altogether
    return Value


def _squared_truncation(U, S, Vh, k):
    return (U[:, :k] * S[:k] ** 2) @ Vh[:k]


WRONG = {
    "check_adjoint": 2.0,  # only the path through x·y
    "check_sigmoid_vjp": lambda x, g: g / (1 + np.exp(-x)),  # σ instead of σ(1 - σ)
    "check_unbroadcast": lambda g, shape: g.sum(axis=tuple(range(g.ndim - len(shape)))),  # forgets the size-1 axes
    "check_value_relu": _wrong_value_class(),
    "check_jl_dimension": math.floor(4 * math.log(10_000) / (0.1**2 / 2 - 0.1**3 / 3)),  # rounded down
    "check_gaussian_projection": lambda d, D, rng: rng.standard_normal((D, d)),  # variance 1, not 1/D
    "check_orthonormal_basis": lambda M: M / np.linalg.norm(M, axis=0),  # unit columns, not orthogonal
    "check_gpt_parameter_count": 818_176 + 65,  # an lm_head bias the model does not have
    "check_causal_mask": lambda T: np.triu(np.ones((T, T), bool)),  # the future instead of the past
    "check_attention": lambda q, k, v: np.exp(q @ k.T / np.sqrt(8)) / np.exp(q @ k.T / np.sqrt(8)).sum(1, keepdims=True) @ v,  # no mask
    "check_cayley": lambda A: np.eye(len(A)) - A,  # not orthogonal
    "check_procrustes": lambda X, Y: np.linalg.qr(X.T @ Y)[0],  # orthogonal, but not the best one
    "check_householder": lambda v: np.eye(len(v)) - 2 * np.outer(v, v) / np.linalg.norm(v),  # divides by ‖v‖
    "check_break_even_rank": 103,  # one past the break-even rank
    "check_eckart_young_error": lambda S, k, norm: float(np.sum(S[k:])),  # σ's, not σ²'s
    "check_rank_for_energy": lambda S, f: int(np.argmax(np.cumsum(S) / S.sum() >= f)) + 1,  # plain sum, not energy
    "check_low_rank_approx": lambda W, k: _squared_truncation(*np.linalg.svd(W, full_matrices=False), k),
    "check_lora_cost": (8 * 768, 2 * 8 * 768),  # A alone; no scaling
    "check_pissa_init": lambda W0, r, s: (np.linalg.svd(W0)[2][:r], np.linalg.svd(W0)[0][:, :r] * np.linalg.svd(W0)[1][:r], W0),
    "check_subspace_similarity": lambda A1, A2: np.ones((len(A1), len(A2))),  # everything similar
    "check_dora_weight": lambda W0, A, B, s, m: m * (W0 + s * B @ A) / np.linalg.norm(W0 + s * B @ A, axis=0),  # column norms
    "check_fgsm_linf": lambda g, eps: eps * g,
    "check_l2_step": lambda g, eps: eps * g,  # not normalised
    "check_project_l2": lambda d, eps: d * eps / np.linalg.norm(d),  # moves points that are inside too
    "check_minilm_lora_params": 6 * 8 * (384 + 384),  # one projection per layer
    "check_masked_mean": lambda hidden, mask: hidden.mean(axis=1),  # counts the padding
    "check_wordpiece": lambda word, vocab: [word[:2], "##" + word[2:]],  # no search at all
    "check_tokens_per_second": 8 * 64 / 20,  # milliseconds, not seconds
    "check_training_memory": "weights alone",  # replaced below by 4 bytes per parameter
    "check_speedup": 12_800 / 51_200,  # upside down
    "check_truncation_formula": _squared_truncation,
    "check_full_delta_count": (100, 100),
    "check_output_shift": "raises",
}


def _weights_alone():
    from minilora.models import GPT, GPTConfig

    return 4 * GPT(GPTConfig(vocab_size=65, block_size=64, n_layer=2, n_head=2, n_embd=64)).num_parameters()


WRONG["check_training_memory"] = _weights_alone()  # forgets the gradient and Adam's two moments


def test_every_check_has_a_wrong_answer_below():
    assert sorted(WRONG) == CHECKS


@pytest.mark.parametrize("name", CHECKS)
def test_check_fails_on_a_wrong_answer_with_a_hint(name):
    with pytest.raises(exercises.WrongAnswer) as failure:
        getattr(exercises, name)(WRONG[name])
    assert len(str(failure.value)) > 20  # a hint, not a bare assertion


@pytest.mark.parametrize("name", CHECKS)
def test_check_only_waits_on_a_stub(name, capsys):
    def stub(*args):
        raise NotImplementedError

    assert getattr(exercises, name)(None) is None  # `answer = None`, the stub of a value exercise
    if callable(WRONG[name]):  # the stub of a function exercise raises NotImplementedError
        assert getattr(exercises, name)(stub) is None
    assert exercises.OPEN in capsys.readouterr().out
