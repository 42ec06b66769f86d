"""Standard against adversarial training, and accuracy under attack against ε (article 004).

The mechanisms (FGSM, PGD, the training loss of Eq. 7, accuracy under attack)
are in minilora/adversarial.py. This module trains classifiers with them and
runs the experiment of docs/adversarial.md §7; ``run_robustness_experiment``
is its single entry point, and ``python -m minilora compare`` calls it.
"""

import dataclasses
import time
from statistics import mean, stdev

from minilora.adversarial import ATTACKS, AdversarialTraining, accuracy_under_attack, embedding_rms
from minilora.train.classify import Split, sentiment_splits, train_classifier
from minilora.train.trainer import TrainConfig

TRAININGS = ("standard", "adversarial")


def train_adversarial(model_config, train_config, eps=0.5, norm="linf", attack="fgsm", mix=0.5, relative=True, eps_warmup=0,
                      n=20_000, seed=0, log=print, progress=True, **pgd_options):  # fmt: skip
    """``train_classifier`` with the loss of Eq. (7); returns (model, metrics, trainer).
    Data, initialisation and batches are ``train_classifier``'s (``mix=0`` gives its weights bit for bit)."""

    def objective(model):
        return AdversarialTraining(model, eps, norm, attack, mix, relative, eps_warmup, **pgd_options)

    return train_classifier(model_config, train_config, n=n, seed=seed, log=log, progress=progress, objective=objective)


def robustness_train_config(seed=0):
    """The recipe of docs/adversarial.md §7: 400 steps of batch 128, after which standard training is near 100%."""
    return TrainConfig(max_iters=400, batch_size=128, lr=3e-3, min_lr=3e-4, warmup_iters=20, eval_interval=400, eval_iters=2, seed=seed)


def run_robustness_experiment(seeds=(0, 1, 2), eps_values=(0.0, 0.25, 0.5, 0.75, 1.0), train_eps=0.5, norm="l2", mix=0.5,
                              eps_warmup=200, pgd_steps=10, n_eval=500, model_config=None, train_config=None, log=print):  # fmt: skip
    """Per seed, train a standard and an adversarial (FGSM, Eq. 7) classifier and attack both at every ε.

    ε values are multiples of ρ (Eq. 8). The two runs of a seed share data, initialisation and batches;
    they are scored on the first ``n_eval`` validation sentences under FGSM and under PGD. Returns a dict:
    the settings, ``accuracy[training][attack]`` (a row per seed, a column per ε), per seed ``clean``
    (validation accuracy) and ``rho`` (ρ), and ``seconds``.
    """
    model_config = model_config or dict(encoder="transformer", n_layer=1, n_head=4, n_embd=32)
    train_config = train_config or robustness_train_config()
    _, _, val = sentiment_splits()
    val = Split(val.x[:n_eval], val.y[:n_eval], val.mask[:n_eval])
    accuracy_table = {t: {a: [] for a in ATTACKS} for t in TRAININGS}
    clean, rho = {t: [] for t in TRAININGS}, {t: [] for t in TRAININGS}
    started = time.perf_counter()
    for seed in seeds:
        for training, weight in zip(TRAININGS, (0.0, mix)):
            config = dataclasses.replace(train_config, seed=seed)
            model, metrics, _ = train_adversarial(model_config, config, train_eps, norm, "fgsm", weight, eps_warmup=eps_warmup, log=lambda *_: None, progress=False)
            clean[training].append(metrics["val_accuracy"])
            rho[training].append(embedding_rms(model, val.x, val.mask))
            for attack, options in (("fgsm", {}), ("pgd", {"steps": pgd_steps})):
                accuracy_table[training][attack].append(accuracy_under_attack(model, val, eps_values, attack, norm, **options))
            if log:
                pgd = " ".join(f"{a:.3f}" for a in accuracy_table[training]["pgd"][-1])
                log(f"seed {seed} {training:11s} clean {clean[training][-1]:.4f}  ρ {rho[training][-1]:.3f}  under PGD at each ε: {pgd}")
    return dict(seeds=list(seeds), eps=list(eps_values), train_eps=train_eps, norm=norm, mix=mix, eps_warmup=eps_warmup,
                pgd_steps=pgd_steps, n_eval=len(val), model_config=model_config, train_config=dataclasses.asdict(train_config),
                accuracy=accuracy_table, clean=clean, rho=rho, seconds=round(time.perf_counter() - started, 1))  # fmt: skip


def _spread(values):
    """Mean and sample standard deviation (0 for a single seed)."""
    return mean(values), (stdev(values) if len(values) > 1 else 0.0)


def robustness_table(result):
    """The result as a Markdown table, in percent: mean ± standard deviation over the seeds (one seed: no spread)."""
    lines = ["| ε / ρ | standard, FGSM | standard, PGD | adversarial, FGSM | adversarial, PGD |", "|---:|---:|---:|---:|---:|"]
    one_seed = len(result["seeds"]) == 1  # a single run has no spread to report
    for i, eps in enumerate(result["eps"]):
        cells = [_spread([100.0 * row[i] for row in result["accuracy"][t][a]]) for t in TRAININGS for a in ATTACKS]
        lines.append(f"| {eps:g} | " + " | ".join(f"{m:.1f}" if one_seed else f"{m:.1f} ± {s:.1f}" for m, s in cells) + " |")
    return "\n".join(lines)


def plot_robustness(result, path):
    """Accuracy against ε/ρ, standard and adversarial training, mean ± std over seeds; saves a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # matplotlib only when plotting
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4.2), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    eps = result["eps"]
    for training, color in zip(TRAININGS, ("tab:red", "tab:blue")):
        for attack, style in (("pgd", "-"), ("fgsm", "--")):
            stats = [_spread([row[i] for row in result["accuracy"][training][attack]]) for i in range(len(eps))]
            ax.plot(eps, [m for m, _ in stats], style, color=color, marker="o", markersize=3, label=f"{training} training, {attack.upper()}")
            ax.fill_between(eps, [m - s for m, s in stats], [m + s for m, s in stats], color=color, alpha=0.15)
    ax.axvline(result["train_eps"], color="gray", linestyle=":", label=f"training radius {result['train_eps']:g}ρ")
    ax.set_xlabel(f"attack radius ε / ρ ({result['norm'].upper()} per sentence; ρ = RMS token-embedding norm)")
    ax.set_ylabel("validation accuracy under attack")
    n = len(result["seeds"])
    ax.set_title("TextClassifier, sentiment corpus: " + (f"{n} seeds, mean ± std" if n > 1 else "1 seed"))
    ax.set_ylim(0.0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.savefig(path)
    return path
