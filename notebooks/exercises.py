"""Checks for the exercises at the end of each notebook.

Each ``check_...(answer)`` takes your answer (a number, or the function you wrote)
and either prints "Correct.", or raises ``WrongAnswer`` with a hint. While the
answer is still the stub (``None``, or a function that raises
``NotImplementedError``) it only says that the exercise is open, so a notebook
runs top to bottom before you have done its exercises.

The checks compare with closed forms, with NumPy written out here, or with
minilora itself. They live beside the notebooks, not in the library.
"""

import functools
import math

import numpy as np

OPEN = "Exercise still open: fill in your answer above, then run this cell again."


class WrongAnswer(AssertionError):
    """The answer was checked and is wrong; the message says what to look at."""


def _require(condition, hint):
    if not condition:
        raise WrongAnswer(hint)


def exercise(check):
    """Run ``check(answer)``: "open" for a stub, ``WrongAnswer`` with a hint, or "Correct."."""

    @functools.wraps(check)
    def run(answer):
        if answer is None:
            print(OPEN)
            return None
        try:
            check(answer)
        except NotImplementedError:
            print(OPEN)
            return None
        except WrongAnswer:
            raise
        except Exception as err:  # the answer crashed: still a wrong answer, with the reason
            raise WrongAnswer(f"your answer raised {type(err).__name__}: {err}") from err
        print("Correct.")
        return True

    return run


def _close(a, b, tol=1e-8):
    return np.shape(a) == np.shape(b) and np.allclose(a, b, rtol=tol, atol=tol)


# ----------------------------------------------------------------------------
# 00 · autograd


@exercise
def check_adjoint(answer):
    """∂f/∂x of f(x, y) = x·y + exp(x) at (x, y) = (1, 2)."""
    _require(math.isclose(float(answer), 2.0 + math.e, rel_tol=1e-9),
             "x reaches f along two paths, through x·y and through exp(x): add both contributions")


@exercise
def check_sigmoid_vjp(fn):
    """fn(x, grad) -> the VJP of σ(x) = 1 / (1 + e^(-x)), elementwise."""
    rng = np.random.default_rng(0)
    x, grad = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    s = 1.0 / (1.0 + np.exp(-x))
    out = np.asarray(fn(x, grad))
    _require(out.shape == x.shape, f"the VJP has the input's shape {x.shape}, got {out.shape}")
    _require(_close(out, grad * s * (1 - s)), "σ'(x) = σ(x)(1 - σ(x)), multiplied by the upstream gradient entry by entry")


@exercise
def check_unbroadcast(fn):
    """fn(grad, shape) -> grad summed back to ``shape``, as minilora.autograd.unbroadcast."""
    rng = np.random.default_rng(1)
    grad = rng.standard_normal((2, 3, 4))
    for shape in [(2, 3, 4), (3, 4), (4,), (1, 4), (3, 1), (2, 1, 4), ()]:
        out = np.asarray(fn(grad, shape))
        expected = grad.sum(axis=tuple(range(grad.ndim - len(shape)))) if len(shape) < grad.ndim else grad
        expected = expected.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True).reshape(shape)
        _require(out.shape == shape, f"for shape {shape} the result must have that shape, got {out.shape}")
        _require(_close(out, expected), f"wrong values for shape {shape}: sum the leading extra axes away, then the axes where shape has 1 (keepdims)")


@exercise
def check_value_relu(Value):
    """Your scalar Value class, extended with .relu(): value and gradients on two branches."""
    a, b = Value(-2.0), Value(3.0)
    out = (a * b).relu() + (a + b).relu() * a  # relu(-6) = 0 and relu(1) = 1
    out.backward()
    _require(math.isclose(out.data, -2.0), f"forward: relu(-6) + relu(1)·(-2) = -2, got {out.data}")
    # d/da = 0·b + (relu'(1)·1)·a + relu(1) = -2 + 1 = -1;  d/db = 0·a + relu'(1)·a = -2
    _require(math.isclose(a.grad, -1.0) and math.isclose(b.grad, -2.0),
             f"gradients: expected a.grad = -1, b.grad = -2, got {a.grad}, {b.grad}; relu passes the gradient only where its input is > 0")


# ----------------------------------------------------------------------------
# 01 · random projection


@exercise
def check_jl_dimension(answer):
    """The smallest k of the Johnson–Lindenstrauss bound for n = 10,000 points, ε = 0.1."""
    expected = math.ceil(4 * math.log(10_000) / (0.1**2 / 2 - 0.1**3 / 3))
    _require(int(answer) == expected and float(answer) == int(answer),
             "k ≥ 4 ln n / (ε²/2 - ε³/3), with the natural log, rounded up to a whole dimension")


@exercise
def check_gaussian_projection(fn):
    """fn(d, D, rng) -> a (D, d) matrix whose entries are N(0, 1/D)."""
    R = np.asarray(fn(50, 2000, np.random.default_rng(0)))
    _require(R.shape == (2000, 50), f"R maps d = 50 to D = 2000, so it is (D, d) = (2000, 50); got {R.shape}")
    _require(abs(R.mean()) < 0.01, "the entries must have mean 0")
    _require(abs(R.var() * 2000 - 1) < 0.05, f"the variance must be 1/D so that E‖Rx‖² = ‖x‖²; got {R.var():.2e} instead of {1 / 2000:.2e}")


@exercise
def check_orthonormal_basis(fn):
    """fn(M) -> Q with orthonormal columns spanning the columns of M (M is tall, full rank)."""
    M = np.random.default_rng(2).standard_normal((30, 6))
    Q = np.asarray(fn(M))
    _require(Q.shape == M.shape, f"Q has one column per column of M: {M.shape}, got {Q.shape}")
    _require(_close(Q.T @ Q, np.eye(6)), "the columns of Q must be orthonormal: QᵀQ = I")
    _require(_close(Q @ (Q.T @ M), M), "Q must span the columns of M: QQᵀM = M (np.linalg.qr gives such a Q)")


# ----------------------------------------------------------------------------
# 02 · Transformer


@exercise
def check_gpt_parameter_count(answer):
    """Parameters of GPT(GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128))."""
    from minilora.models import GPT, GPTConfig

    expected = GPT(GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128)).num_parameters()
    _require(int(answer) == expected,
             f"{answer:,} is {'too many' if answer > expected else 'too few'}: count the two embeddings, per block two "
             "LayerNorms, four C×C projections and the MLP (C→4C→C), each with its bias, then ln_f and lm_head (no bias)")


@exercise
def check_causal_mask(fn):
    """fn(T) -> a (T, T) boolean array, True where position i may attend to position j."""
    for T in (1, 4, 7):
        mask = np.asarray(fn(T))
        _require(mask.shape == (T, T) and mask.dtype == bool, f"for T = {T}: a ({T}, {T}) boolean array, got {mask.shape} {mask.dtype}")
        _require(np.array_equal(mask, np.tril(np.ones((T, T), bool))), "position i may see j ≤ i (itself and the past), never j > i")


@exercise
def check_attention(fn):
    """fn(q, k, v) -> causal single-head attention softmax(q kᵀ / √d + mask) v, each (T, d)."""
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((5, 8)) for _ in range(3))
    scores = q @ k.T / math.sqrt(8)
    scores[np.triu_indices(5, 1)] = -np.inf
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    expected = (weights / weights.sum(axis=1, keepdims=True)) @ v
    out = np.asarray(fn(q, k, v))
    _require(out.shape == (5, 8), f"the output has v's shape (5, 8), got {out.shape}")
    _require(np.allclose(out[0], v[0]), "position 0 sees only itself, so its output must be v[0]: is the mask applied before the softmax?")
    _require(_close(out, expected), "scale the scores by 1/√d, mask the future with -inf, softmax over each row, then multiply by v")


# ----------------------------------------------------------------------------
# 03 · orthogonal


@exercise
def check_cayley(fn):
    """fn(A) -> the Cayley map (I + A)⁻¹(I - A) of a skew-symmetric A."""
    rng = np.random.default_rng(4)
    M = rng.standard_normal((5, 5))
    A = M - M.T
    Q = np.asarray(fn(A))
    _require(Q.shape == A.shape, f"Q is square like A, got {Q.shape}")
    _require(_close(Q.T @ Q, np.eye(5)), "Q must be orthogonal; check the order (I + A)⁻¹(I - A) and use np.linalg.solve")
    _require(_close(Q, np.linalg.solve(np.eye(5) + A, np.eye(5) - A)), "orthogonal, but not the Cayley map of A: (I + A)⁻¹(I - A)")


@exercise
def check_procrustes(fn):
    """fn(X, Y) -> the orthogonal W that minimises ‖XW - Y‖_F."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((40, 4))
    R = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    Y = X @ R + 0.01 * rng.standard_normal((40, 4))
    W = np.asarray(fn(X, Y))
    _require(W.shape == (4, 4) and _close(W.T @ W, np.eye(4)), "W must be a 4×4 orthogonal matrix")
    U, _, Vh = np.linalg.svd(X.T @ Y)
    _require(_close(W, U @ Vh), "take the SVD of XᵀY = UΣVᵀ; the best orthogonal W is UVᵀ")


@exercise
def check_householder(fn):
    """fn(v) -> the reflection H = I - 2 v vᵀ / (vᵀv)."""
    v = np.array([1.0, -2.0, 0.5, 3.0])
    H = np.asarray(fn(v))
    _require(H.shape == (4, 4), f"H is 4×4, got {H.shape}")
    _require(_close(H @ v, -v), "a reflection across the plane orthogonal to v sends v to -v: divide by vᵀv, not ‖v‖")
    _require(_close(H, H.T) and _close(H @ H, np.eye(4)), "H must be symmetric and its own inverse")


# ----------------------------------------------------------------------------
# 04 · SVD and low rank


@exercise
def check_break_even_rank(answer):
    """The largest k at which a rank-k factored Linear(512, 128) is smaller than the dense one."""
    m, n = 128, 512
    _require(float(answer) == int(answer), "a rank is a whole number")
    k = int(answer)
    smaller = lambda k: k * (m + n) + m < m * n + m
    _require(smaller(k), f"at k = {k} the factors hold {k * (m + n):,} weights, not fewer than the dense {m * n:,}")
    _require(not smaller(k + 1), f"k = {k + 1} is still smaller: the break-even rank is mn/(m + n)")


@exercise
def check_eckart_young_error(fn):
    """fn(S, k, norm) -> the error of the best rank-k approximation, from the singular values."""
    S = np.array([5.0, 3.0, 2.0, 1.0, 0.5])
    for k in range(len(S) + 1):
        fro, spectral = float(fn(S, k, "fro")), float(fn(S, k, "spectral"))
        _require(math.isclose(fro, math.sqrt(np.sum(S[k:] ** 2)), abs_tol=1e-12), f"Frobenius at k = {k}: (Σ_(i>k) σ_i²)^½")
        _require(math.isclose(spectral, S[k] if k < len(S) else 0.0, abs_tol=1e-12),
                 f"spectral at k = {k}: σ_(k+1), the largest singular value dropped (0 when none is)")


@exercise
def check_rank_for_energy(fn):
    """fn(S, f) -> the smallest k with E(k) = Σ_(i≤k) σ_i² / Σ σ_i² ≥ f."""
    from minilora.lowrank import rank_for_energy

    S = np.array([2.0, 1.0, 1.0, 1.0, 1.0])
    _require(int(fn(S, 0.5)) == 1, "energy is the sum of *squared* singular values: σ = (2, 1, 1, 1, 1) has half of it in the first")
    rng = np.random.default_rng(6)
    for _ in range(20):
        S = np.sort(rng.random(12))[::-1]
        for f in (0.3, 0.9, 0.99):
            _require(int(fn(S, f)) == rank_for_energy(S, f), f"for f = {f}: the smallest k with E(k) ≥ f")


@exercise
def check_low_rank_approx(fn):
    """fn(W, k) -> W_k, the best rank-k approximation, from np.linalg.svd."""
    from minilora.lowrank import low_rank_approx

    rng = np.random.default_rng(7)
    for shape, k in [((6, 9), 1), ((6, 9), 2), ((9, 6), 3), ((5, 5), 5)]:
        W = rng.standard_normal(shape)
        out = np.asarray(fn(W, k))
        _require(out.shape == shape, f"W_k has W's shape {shape}, got {out.shape}")
        _require(_close(out, low_rank_approx(W, k)), f"wrong W_k for shape {shape}, k = {k}: U[:, :k] · diag(S[:k]) · Vᵀ[:k], S used once")


# ----------------------------------------------------------------------------
# 05 · LoRA


@exercise
def check_lora_cost(answer):
    """(trainable parameters, extra multiply-adds per token) of r = 8 LoRA on a 768 -> 768 Linear."""
    params, madds = answer
    _require(int(params) == 8 * (768 + 768), "A is r × d_in and B is d_out × r: r(d_in + d_out)")
    _require(int(madds) == 8 * 768 + 768 * 8 + 768, "Ax costs r·d_in, B(Ax) costs d_out·r, and scaling by s costs d_out more")


@exercise
def check_pissa_init(fn):
    """fn(W0, r, scaling) -> (A, B, W_residual) of PiSSA, against LoRALinear(init_lora_weights="pissa")."""
    import minilora as ml
    from minilora.lora import LoRALinear
    from minilora.nn import Linear

    rng = np.random.default_rng(8)
    W0 = rng.standard_normal((6, 10))
    A, B, residual = (np.asarray(x) for x in fn(W0, 3, 0.5))
    _require(A.shape == (3, 10) and B.shape == (6, 3) and residual.shape == W0.shape, "shapes: A (r, d_in), B (d_out, r), residual like W0")
    _require(_close(residual + 0.5 * B @ A, W0), "the layer must start unchanged: residual + s·BA = W0")
    U, S, Vh = np.linalg.svd(W0, full_matrices=False)
    _require(_close(0.5 * B @ A, (U[:, :3] * S[:3]) @ Vh[:3]), "s·BA must be the top-r part of W0, U_r Σ_r V_rᵀ (divide by √s in both factors)")
    base = Linear(10, 6, bias=False).double()
    base.weight.data = W0.copy()
    theirs = LoRALinear(base, r=3, lora_alpha=1.5, init_lora_weights="pissa")  # s = 1.5 / 3 = 0.5
    x = ml.Tensor(rng.standard_normal((4, 10)))
    with ml.no_grad():
        _require(_close(theirs(x).data, x.data @ W0.T), "(minilora's own PiSSA layer should start unchanged too)")
    _require(_close(np.abs(A), np.abs(theirs.lora_A.data)) and _close(np.abs(B), np.abs(theirs.lora_B.data)),
             "A = √Σ_r V_rᵀ / √s and B = U_r √Σ_r / √s: split √Σ_r evenly between the factors")


@exercise
def check_subspace_similarity(fn):
    """fn(A1, A2) -> the table φ(i, j) of lora (11), against minilora.lora.analysis.subspace_similarity."""
    from minilora.lora.analysis import subspace_similarity

    rng = np.random.default_rng(9)
    A1, A2 = rng.standard_normal((5, 16)), rng.standard_normal((3, 16))
    out = np.asarray(fn(A1, A2))
    _require(out.shape == (5, 3), f"one row per i ≤ r1 = 5, one column per j ≤ r2 = 3: (5, 3), got {out.shape}")
    _require(_close(np.asarray(fn(A1, A1)), np.ones((5, 5))), "an adapter against itself gives φ = 1 everywhere: divide by min(i, j)")
    _require(_close(out, subspace_similarity(A1, A2)), "use the right singular vectors (rows of Vᵀ from the SVD of each A), the top i and top j")


@exercise
def check_dora_weight(fn):
    """fn(W0, A, B, scaling, m) -> m ⊙ (W0 + s·BA) / ‖W0 + s·BA‖, the norm of each output row."""
    rng = np.random.default_rng(10)
    W0, A = rng.standard_normal((4, 6)), rng.standard_normal((2, 6))
    m0 = np.linalg.norm(W0, axis=1)
    _require(_close(np.asarray(fn(W0, A, np.zeros((4, 2)), 2.0, m0)), W0), "with B = 0 and m the row norms of W0, the weight must be W0 itself")
    B, m = rng.standard_normal((4, 2)), rng.random(4) + 0.5
    V = W0 + 2.0 * B @ A
    out = np.asarray(fn(W0, A, B, 2.0, m))
    _require(_close(np.linalg.norm(out, axis=1), m), "each output row of the result must have norm m_i: normalise rows (axis=1), then scale")
    _require(_close(out, m[:, None] * V / np.linalg.norm(V, axis=1, keepdims=True)), "the direction is W0 + s·BA, normalised row by row")


# ----------------------------------------------------------------------------
# 06 · adversarial


@exercise
def check_fgsm_linf(fn):
    """fn(g, eps) -> the L∞ FGSM step ε·sign(g)."""
    g = np.array([[0.3, -2.0, 0.0], [1e-9, -1e-9, 5.0]])
    out = np.asarray(fn(g, 0.1))
    _require(out.shape == g.shape and np.abs(out).max() <= 0.1 + 1e-12, "the step must stay in the L∞ ball: every |δ_i| ≤ ε")
    _require(_close(out, 0.1 * np.sign(g)), "the best linear step in the L∞ ball moves every coordinate the whole way: ε·sign(g)")


@exercise
def check_l2_step(fn):
    """fn(g, eps) -> the L2 FGSM step ε·g/‖g‖₂ of one vector (zero for g = 0)."""
    g = np.array([3.0, -4.0, 0.0])
    _require(_close(np.asarray(fn(g, 0.5)), 0.5 * g / 5.0), "ε·g/‖g‖₂: the whole budget along the gradient")
    _require(_close(np.asarray(fn(np.zeros(3), 0.5)), np.zeros(3)), "for g = 0 there is no direction: return zeros, not nan")


@exercise
def check_project_l2(fn):
    """fn(delta, eps) -> the projection of delta onto the L2 ball of radius eps."""
    inside, outside = np.array([0.1, 0.2]), np.array([3.0, 4.0])
    _require(_close(np.asarray(fn(inside, 1.0)), inside), "a point already inside the ball stays where it is")
    _require(_close(np.asarray(fn(outside, 1.0)), outside / 5.0), "a point outside is rescaled onto the sphere: δ·ε/‖δ‖")


# ----------------------------------------------------------------------------
# 07 · a pretrained encoder


@exercise
def check_minilm_lora_params(answer):
    """Numbers LoRA r = 8 trains on query and value of all-MiniLM-L6-v2 (6 layers, width 384)."""
    _require(int(answer) != 6 * 8 * (384 + 384), "that is one projection per layer; LoRA here adapts query and value")
    _require(int(answer) == 6 * 2 * 8 * (384 + 384), "per adapted layer, A is r × 384 and B is 384 × r")


@exercise
def check_masked_mean(fn):
    """fn(hidden (B, T, C), mask (B, T) of 0/1) -> (B, C): the mean over the real tokens only."""
    rng = np.random.default_rng(0)
    hidden, mask = rng.standard_normal((3, 5, 4)), np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    expected = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    got = np.asarray(fn(hidden, mask))
    _require(not _close(got, hidden.mean(1)), "padding must not count: average over the positions where mask is 1")
    _require(_close(got, expected), "sum hidden·mask over the tokens, then divide by the number of real tokens")


@exercise
def check_wordpiece(fn):
    """fn(word, vocab) -> pieces: greedy longest match first, '##' on continuations, ['[UNK]'] if stuck."""
    vocab = {"un", "##aff", "##able", "a", "##ff", "##a", "##b", "##l", "##e", "aff"}
    _require(fn("unaffable", vocab) == ["un", "##aff", "##able"], "take the longest piece in the vocabulary at each point")
    _require(fn("affable", vocab) == ["aff", "##able"], "the first piece has no '##'; every later one has")
    _require(fn("xyz", vocab) == ["[UNK]"], "a word that cannot be covered becomes the single token '[UNK]'")


# ----------------------------------------------------------------------------
# 08 · GPU backend


@exercise
def check_tokens_per_second(answer):
    """Tokens/s of a step on B = 8 sequences of T = 64 tokens with a median step of 20 ms."""
    _require(math.isclose(float(answer), 8 * 64 / 0.020, rel_tol=1e-9), "tokens/s = B·T / t, with t in seconds")


@exercise
def check_training_memory(answer):
    """Bytes of weights, gradients and Adam's two moments, float32, for the GPT of the exercise."""
    from minilora.models import GPT, GPTConfig

    n = GPT(GPTConfig(vocab_size=65, block_size=64, n_layer=2, n_head=2, n_embd=64)).num_parameters()
    _require(int(answer) != 4 * n, "that is the weights alone; training also keeps a gradient and Adam's m and v for each")
    _require(int(answer) == 4 * 4 * n, "four float32 arrays per parameter (weight, gradient, m, v), 4 bytes each")


@exercise
def check_speedup(answer):
    """The speed-up of a device at 51,200 tokens/s over a CPU at 12,800 tokens/s."""
    _require(math.isclose(float(answer), 4.0), "speed-up = device tokens/s ÷ CPU tokens/s (above 1 means the device is faster)")


# ----------------------------------------------------------------------------
# Appendix · the source articles' errors


@exercise
def check_truncation_formula(fn):
    """fn(U, S, Vh, k) -> W_k from a thin SVD, with the singular values used once."""
    rng = np.random.default_rng(11)
    W = rng.standard_normal((8, 12))
    U, S, Vh = np.linalg.svd(W, full_matrices=False)
    out = np.asarray(fn(U, S, Vh, 3))
    _require(out.shape == W.shape, f"W_k has W's shape {W.shape}, got {out.shape}")
    squared = (U[:, :3] * S[:3] ** 2) @ Vh[:3]
    _require(not _close(out, squared), "that squares the singular values (U_k S_k, then S_k again): use S_k once")
    _require(_close(out, (U[:, :3] * S[:3]) @ Vh[:3]), "U[:, :k] · diag(S[:k]) · Vh[:k]")


@exercise
def check_full_delta_count(answer):
    """(numbers in a full m×n δ, numbers in a diagonal δ) for a 100 × 300 weight."""
    full, diagonal = answer
    _require(int(full) == 100 * 300, "a full δ between U and Vᵀ has the shape of W: m·n numbers, as many as full fine-tuning")
    _require(int(diagonal) == 100, "a diagonal δ has one number per singular value: min(m, n)")


@exercise
def check_output_shift(answer):
    """Does adding +ε to the output raise or lower -log p for the target 1? ("raises" or "lowers")."""
    _require(str(answer).strip().lower() in ("raises", "lowers"), 'answer "raises" or "lowers"')
    _require(str(answer).strip().lower() == "lowers", "p moves towards the target 1, so -log p goes down: the shift helps the model")
