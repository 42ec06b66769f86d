"""The LoRA paper's §7 pictures for all-MiniLM-L6-v2, from experiments.minilm_lora's results."""

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def plot_section7(result, path=None):
    """Three panels: full fine-tuning's ΔW spectra (q, v, last layer), φ(r=8, r=64) and φ between
    two seeds at r=8 for the last layer's v_proj. Returns the figure (saved to ``path`` if given)."""
    s7 = result["section7"]
    fig = Figure(figsize=(13, 3.6), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    ax = axes[0]
    for proj, style in (("q_proj", "-o"), ("v_proj", "-s")):
        for layer, sigma in enumerate(s7["spectra"][proj]):
            if layer in (0, len(s7["spectra"][proj]) - 1):
                ax.semilogy(range(1, len(sigma) + 1), sigma, style, ms=3, label=f"{proj}, layer {layer}")
    ax.set(title="σᵢ of full fine-tuning's ΔW", xlabel="i", ylabel="σᵢ")
    ax.legend(fontsize=7)
    last = len(s7["phi_r8_r64"]["v_proj"]) - 1
    for ax, key, title, xlabel in (
        (axes[1], "phi_r8_r64", f"φ(i, j): r=8 vs r={result['config']['phi_rank']}, v_proj, layer {last}", "j (r=64 adapter)"),
        (axes[2], "phi_seeds", f"φ(i, j): r=8, two seeds, v_proj, layer {last}", "j (seed 2)"),
    ):
        phi = [row[:8] for row in s7[key]["v_proj"][last]]
        image = ax.imshow(phi, vmin=0, vmax=1, cmap="viridis", origin="upper")
        ax.set(title=title, xlabel=xlabel, ylabel="i (r=8 adapter)")
        ax.set_xticks(range(len(phi[0])), range(1, len(phi[0]) + 1))
        ax.set_yticks(range(len(phi)), range(1, len(phi) + 1))
        fig.colorbar(image, ax=ax, fraction=0.046)
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
