"""The demo's pictures: loss curves, ΔW spectra, subspace similarity heatmaps."""

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from minilora import backend


def _figure(width, height):
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def loss_curves(path, histories):
    """Validation loss on B (adaptation) and on A (forgetting) against the step, per method."""
    fig = _figure(11, 4)
    for i, (key, title) in enumerate((("B_loss", "domain B (the new domain)"), ("A_loss", "domain A (forgetting)"))):
        ax = fig.add_subplot(1, 2, i + 1)
        for name, history in histories.items():
            steps = [h["step"] for h in history]
            values = [h[key] for h in history]
            if len(steps) == 1:
                ax.axhline(values[0], color="gray", linestyle=":", label=name)
            else:
                ax.plot(steps, values, marker="o", markersize=2.5, label=name)
        ax.set_title(title)
        ax.set_xlabel("adaptation step")
        ax.set_ylabel("validation loss (nats / char)")
        ax.grid(alpha=0.3)
    # One legend below both panels: inside either one it covered the curves.
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=4, fontsize=7)
    fig.savefig(path)
    return path


def spectra(path, analysis):
    """Singular values of full fine-tuning's ΔW for q and v, one line per layer, and their energy."""
    fig = _figure(11, 4)
    for i, proj in enumerate(("q_proj", "v_proj")):
        ax = fig.add_subplot(1, 2, i + 1)
        for layer, sigma in enumerate(analysis["spectra"][proj]):
            s = backend.to_numpy(sigma)
            ax.semilogy(range(1, len(s) + 1), s, marker=".", label=f"layer {layer}")
        ax.axvline(8, color="gray", linestyle=":", label="r = 8")
        ax.set_title(f"full fine-tuning: singular values of ΔW ({proj})")
        ax.set_xlabel("index i")
        ax.set_ylabel("σᵢ")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.savefig(path)
    return path


def similarity_heatmaps(path, analysis):
    """φ(i, j) between the r=8 adapter and the r=1, 2, 4 adapters, for q and v."""
    projs = ("q_proj", "v_proj")
    pairs = list(analysis["similarity"]["q_proj"])
    fig = _figure(3.2 * len(pairs) + 1, 6.5)
    for row, proj in enumerate(projs):
        for col, pair in enumerate(pairs):
            ax = fig.add_subplot(len(projs), len(pairs), row * len(pairs) + col + 1)
            phi = backend.to_numpy(analysis["similarity"][proj][pair])
            image = ax.imshow(phi, vmin=0, vmax=1, cmap="viridis", aspect="auto")
            ax.set_title(f"{proj}: {pair}", fontsize=9)
            ax.set_xlabel("j (smaller adapter)")
            ax.set_ylabel("i (r = 8 adapter)")
            ax.set_xticks(range(phi.shape[1]), range(1, phi.shape[1] + 1))
            ax.set_yticks(range(phi.shape[0]), range(1, phi.shape[0] + 1))
    fig.colorbar(image, ax=fig.axes, shrink=0.8, label="φ(i, j)")
    fig.suptitle("subspace similarity of adapters of different ranks (last layer)")
    fig.savefig(path)
    return path


def save_all(out, histories, analysis):
    return [
        loss_curves(out / "loss_curves.png", histories),
        spectra(out / "delta_w_spectra.png", analysis),
        similarity_heatmaps(out / "subspace_similarity.png", analysis),
    ]
