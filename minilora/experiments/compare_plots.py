"""The comparison's picture: each task's metric per method, as bars labelled with what the method trains or stores."""

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

COLORS = {"": "tab:gray", "trainable": "tab:blue", "stored": "tab:orange"}
UNITS = {"loss_b": "nats / char, lower is better", "val_loss": "nats / char, lower is better", "accuracy": "higher is better"}


def methods_chart(path, results):
    """One panel per task: a horizontal bar per method, its length the metric, its label the parameter count."""
    tasks = list(results.values())
    n = len(tasks[0]["rows"])
    fig = Figure(figsize=(13, 0.42 * n + 1.6), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    for i, task in enumerate(tasks):
        ax = fig.add_subplot(1, len(tasks), i + 1)
        rows = task["rows"]
        values = [r[task["metric"]] for r in rows]
        positions = list(range(n))[::-1]  # the table's first row at the top
        ax.barh(positions, values, color=[COLORS[r["counted"]] for r in rows])
        for y, r, v in zip(positions, rows, values):
            count = f"{r['params']:,} {r['counted']}" if r["counted"] else "pretrained"
            ax.text(v, y, f" {v:.3f}  ({count})", va="center", fontsize=7.5)
        ax.set_yticks(positions, [r["method"] for r in rows], fontsize=8)
        ax.set_xlim(0, max(values) * 1.45)  # room for the labels
        ax.set_xticks([t for t in ax.get_xticks() if t <= max(values) * 1.05])  # no accuracy ticks past 1
        ax.set_xlabel(f"{task['metric_label']} ({UNITS[task['metric']]})", fontsize=8.5)
        ax.set_title(f"{task['task']} (full model: {task['full_size']:,} parameters)", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    legend = [Patch(color=COLORS["trainable"], label="adaptation: trainable parameters"),
              Patch(color=COLORS["stored"], label="small model: stored parameters")]  # fmt: skip
    fig.legend(handles=legend, loc="outside lower center", ncols=2, fontsize=8.5)
    fig.savefig(path)
    return path
