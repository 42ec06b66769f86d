"""Drift and its cures: learn article 002's orthogonal W three ways and watch ‖WᵀW - I‖.

The task is orthogonal regression, Y ≈ XW with Y = XQ* + noise for a planted
rotation Q*. The least-squares W that fits the noise is *not* orthogonal, so
plain gradient descent walks away from the orthogonal matrices (the
drift). A QR retraction after every step (Eq. 18) puts W back on them; a
Cayley parametrisation (Eq. 11) never leaves them. docs/orthogonal.md §5
shows the picture ``plot_drift`` draws:

    python -m minilora.orthogonal docs/images/orthogonal_drift.png
"""

from minilora import backend
from minilora.autograd import ops
from minilora.autograd.engine import no_grad
from minilora.nn.module import Parameter
from minilora.optim import SGD, Adam, warmup_cosine
from minilora.orthogonal.checks import orthogonality_error, project_tangent, retract_qr
from minilora.orthogonal.parametrizations import CayleyOrthogonal, ExpmOrthogonal, HouseholderOrthogonal, exponential_map
from minilora.orthogonal.procrustes import procrustes, procrustes_loss

METHODS = ("naive", "retract_qr", "cayley", "expm", "householder")
PARAMETRIZATIONS = {"cayley": CayleyOrthogonal, "expm": ExpmOrthogonal, "householder": HouseholderOrthogonal}


def regression_task(n=8, n_samples=64, noise=0.5, seed=0, dtype="float64"):
    """(X, Y, Q*): X (N × n) Gaussian, Y = XQ* + noise·E, Q* = exp(S - Sᵀ) with S ~ N(0, 0.15²).

    Q* is a rotation of moderate angles (none above 0.83 rad with the defaults),
    well inside what every parametrisation here reaches from where it starts.
    """
    generator = backend.new_generator(seed)
    shapes = ((n_samples, n), (n, n), (n_samples, n))
    x, s, e = (backend.asarray(generator.standard_normal(shape)) for shape in shapes)
    q = exponential_map(s * 0.15).data
    y = x @ q + noise * e
    return tuple(a.astype(dtype) for a in (x, y, q))


def drift_experiment(method, n=8, n_samples=64, noise=0.5, steps=1000, lr=None, dtype="float64", seed=0):
    """Fit ``regression_task`` by ``method``; returns {"error": [...], "loss": [...], "optimum": float}.

    * ``"naive"``: SGD on an unconstrained W (lr 0.05);
    * ``"retract_qr"``: SGD along ``project_tangent`` of the gradient, then ``retract_qr`` (lr 0.05);
    * ``"cayley"``, ``"expm"``, ``"householder"``: Adam (lr 0.1, cosine decay) on the raw parameter of a
      ``CayleyOrthogonal``, ``ExpmOrthogonal`` (both from W = I) or ``HouseholderOrthogonal``
      (n reflections from N(0, 1) vectors drawn after ``ml.manual_seed``: it cannot start at I when n is odd).
    ``error[t]`` is ‖WᵀW - I‖_F and ``loss[t]`` is ‖XW - Y‖²_F / N after t steps, t = 0 ... steps;
    ``optimum`` is the smallest loss a rotation can reach (``procrustes(..., special=True)``).
    """
    if method not in METHODS:
        raise ValueError(f"drift_experiment: method must be one of {METHODS}, got {method!r}")
    x, y, _ = regression_task(n, n_samples, noise, seed, dtype)
    scale = 1.0 / n_samples
    if method in PARAMETRIZATIONS:
        model = PARAMETRIZATIONS[method](n, dtype=dtype)
        params, weight = list(model.parameters()), model.weight
        optimizer = Adam(params, lr=0.1 if lr is None else lr)
    else:
        W = Parameter(backend.xp.eye(n, dtype=backend.dtype(dtype)))
        params, weight = [W], lambda: W
        optimizer = SGD(params, lr=0.05 if lr is None else lr)
    errors, losses = [], []

    def record(w):
        errors.append(orthogonality_error(w))
        losses.append(procrustes_loss(x, y, w) * scale)

    base_lr = optimizer.param_groups[0]["lr"]
    for step in range(steps):
        optimizer.zero_grad()
        w = weight()
        record(w.data)  # the W this step starts from: after `step` updates
        residual = ops.sub(ops.matmul(x, w), y)  # (N, n)
        ((residual * residual).sum() * scale).backward()
        if method == "retract_qr":
            params[0].grad = project_tangent(params[0].data, params[0].grad)
        if method in PARAMETRIZATIONS:  # a cosine decay lets Adam settle at the optimum instead of circling it
            optimizer.param_groups[0]["lr"] = warmup_cosine(step, base_lr, 0, steps)
        optimizer.step()
        if method == "retract_qr":
            retract_qr(params[0])
    with no_grad():
        record(weight().data)
    optimum = procrustes_loss(x, y, procrustes(x, y, special=True)) * scale
    return {"error": errors, "loss": losses, "optimum": optimum}


def plot_drift(path, steps=1000, dtypes=("float32", "float64"), methods=("naive", "retract_qr", "cayley")):
    """Run every method in every dtype and save the two-panel picture of docs/orthogonal.md §5 as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # matplotlib only when drawing
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax_error, ax_loss = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    labels = {"naive": "plain gradient descent", "retract_qr": "+ QR retraction", "cayley": "Cayley + Adam",
              "expm": "exponential + Adam", "householder": "Householder + Adam"}  # fmt: skip
    colors = {"naive": "tab:red", "retract_qr": "tab:blue", "cayley": "tab:green", "expm": "tab:purple", "householder": "tab:orange"}
    for method in methods:
        color = colors[method]
        for dtype, style in zip(dtypes, ("--", "-")):
            run = drift_experiment(method, steps=steps, dtype=dtype)
            t = range(1, steps + 1)  # the log axis starts after the first step
            floor = [max(e, 1e-17) for e in run["error"][1:]]  # an exact 0 has no place on a log axis either
            ax_error.plot(t, floor, style, color=color, label=f"{labels[method]} ({dtype})")
            ax_loss.plot(t, [v / run["optimum"] for v in run["loss"][1:]], style, color=color, label=f"{labels[method]} ({dtype})")
    ax_error.set(xscale="log", yscale="log", xlabel="step", ylabel="‖WᵀW − I‖_F", title="distance from the orthogonal matrices")
    ax_loss.set(xscale="log", yscale="log", xlabel="step", ylabel="loss / best loss of a rotation", title="fit: ‖XW − Y‖² / N")
    ax_loss.axhline(1.0, color="gray", linestyle=":")
    for ax in (ax_error, ax_loss):
        ax.grid(alpha=0.3)
    ax_error.legend(fontsize=7)
    fig.savefig(path)
    return path

