"""The demo's pictures: per task, the loss curves and the spectra of full fine-tuning's ΔW."""

import pathlib

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from minilora import backend


def _figure(width, height):
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def loss_curves(ax, rows):
    """Validation loss against the step, one line per method (a dotted line: no adaptation)."""
    for r in rows:
        steps = [h["step"] for h in r["history"]]
        values = [h["val_loss"] for h in r["history"]]
        if not steps:
            ax.axhline(r["metric"], color="gray", linestyle=":", label=r["method"])
        else:
            ax.plot(steps, values, marker="o", markersize=2.5, label=r["method"])
    ax.set_xlabel("adaptation step")
    ax.set_ylabel("validation loss (nats / char)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the curves, never on them


def spectra(axes, analysis):
    """Singular values of full fine-tuning's ΔW for q and v, one line per block."""
    for ax, proj in zip(axes, ("q_proj", "v_proj")):
        for layer, sigma in enumerate(analysis["spectra"][proj]):
            s = backend.to_numpy(sigma)
            ax.semilogy(range(1, len(s) + 1), s, marker=".", label=f"block {layer}")
        ax.axvline(8, color="gray", linestyle=":", label="r = 8")
        ax.set_title(f"full fine-tuning's ΔW ({proj})", fontsize=9)
        ax.set_xlabel("index i")
        ax.set_ylabel("σᵢ")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)


def save_task(out, name, rows, analysis):
    """``<out>/<name>.png`` (spaces as underscores): the loss curves and, with full fine-tuning, ΔW's spectra."""
    fig = _figure(15, 4)
    loss_curves(fig.add_subplot(1, 3, 1), rows)
    fig.axes[0].set_title(f"{name}: validation loss while adapting", fontsize=9)
    if "spectra" in analysis:
        spectra([fig.add_subplot(1, 3, 2), fig.add_subplot(1, 3, 3)], analysis)
    path = pathlib.Path(out) / f"{name.replace(' ', '_')}.png"
    fig.savefig(path)
    return str(path)
