"""``python -m minilora demo``: adapt the shipped base in both regimes, and see when a low rank is enough.

LoRA rests on one premise: a capable pretrained network already knows most
of what a new task needs, so the update the task needs has a low rank. The
demo loads the base that ships with minilora (a character GPT pretrained on
five genres of the plays) and adapts it to tasks of two kinds
(minilora/experiments/demo_tasks.py):

* **low-rank**: ``teacher``, where a known rank-2 change was planted in the
  base's q and v, and ``verse``, the base's own genres in verse only;
* **new content**: ``histories``, a genre the base never saw.

Every method starts from the same base weights and takes the same number of
steps on the same batches, with a learning rate tuned per method
(``DemoConfig``). For each task it prints one table (trainable parameters,
validation loss, the share of full fine-tuning's gain recovered, time per
step), checks that a merged adapter gives the same outputs, measures the
LoRA paper's §7 quantities (subspace similarity φ between ranks and between
seeds, the amplification factor, ΔW's spectrum), shows samples before and
after, and writes every number to ``<out>/demo.json`` (keys in docs/lora.md §6).

The default run keeps to about three minutes on two cores by running the
rows that make the case on ``teacher`` and ``histories``; ``--all`` runs every
row of every task, ``verse`` included, and the extra adapters of §7.
"""

import dataclasses
import json
import pathlib
import statistics
import time

from minilora import backend, pretrained, validate
from minilora.autograd.engine import no_grad
from minilora.experiments import demo_plots
from minilora.experiments.demo_tasks import TASKS, planted_similarity
from minilora.fileio import atomic_write
from minilora.lora import LoraConfig, apply_lora, count_parameters, lora_layers, merge_lora, unmerge_lora
from minilora.lora.analysis import amplification_factor, energy_fraction, singular_values, subspace_similarity
from minilora.models import build_model
from minilora.models.common import mean_loss
from minilora.nn import freeze, unfreeze
from minilora.train import TrainConfig, Trainer

QV = ["q_proj", "v_proj"]


@dataclasses.dataclass
class DemoConfig:
    seed: int = 0  # seeds the tasks, the adapters and every batch
    out: str = "minilora-demo"  # where demo.json, plots and samples go
    all: bool = False  # every row of every task (about 21 minutes on 2 cores), not only the rows that make the case
    quick: bool = False  # a smoke test of seconds: tiny windows and a few steps; its numbers mean nothing
    tasks: tuple = None  # which tasks to run (None: teacher, verse or prose, histories; with all, verse too)
    block_size: int = 128  # characters per training window (the base reads up to 256)
    batch_size: int = 8  # windows per step
    adapt_iters: int = 60  # steps per method, the same for every method
    eval_iters: int = 6  # evaluation batches per task
    teacher_strength: float = 1.0  # ΔW* = strength · σ₁(W) · (u₁v₂ᵀ + u₂v₁ᵀ) in every q_proj and v_proj
    learning_rates: dict = None  # {task: {"full"|"lora"|"head": peak lr}} over LEARNING_RATES (None: those)
    sample_chars: int = 120  # characters per sample before and after adaptation

    def __post_init__(self):
        name = type(self).__name__
        validate.integer(name, "seed", self.seed, 0)
        for field in ("block_size", "batch_size", "adapt_iters", "eval_iters", "sample_chars"):
            validate.integer(name, field, getattr(self, field), 1)
        validate.number(name, "teacher_strength", self.teacher_strength, 0)
        if not str(self.out).strip():
            raise ValueError(f"{name}.out is an empty string; name a directory for demo.json and the plots (--out DIR)")
        if self.tasks is None:
            self.tasks = tuple(TASKS) if self.all or self.quick else DEFAULT_TASKS
        if self.quick:
            self.block_size, self.batch_size, self.adapt_iters, self.eval_iters = 32, 2, 3, 1
            self.sample_chars = 20
        unknown = set(self.tasks) - set(TASKS)
        if unknown:
            raise ValueError(f"unknown demo task(s) {sorted(unknown)}; choose from {sorted(TASKS)}")
        given = self.learning_rates or {}
        self.learning_rates = {task: {**LEARNING_RATES[task], **given.get(task, {})} for task in TASKS}


# Peak learning rates per task and kind of method ("full": full fine-tuning and the
# fixed/trainable split; "lora": every LoRA row; "head": the output layer alone), each
# the best of a sweep by factors of about 3 on an intermediate checkpoint of the base
# (docs/lora.md §7 lists the sweep). "head" was not swept.
LEARNING_RATES = {
    "teacher": {"full": 3e-4, "lora": 1e-2, "head": 3e-3},
    "verse": {"full": 3e-4, "lora": 1e-2, "head": 3e-3},
    "verse or prose": {"full": 3e-4, "lora": 1e-2, "head": 3e-2},
    "histories": {"full": 1e-3, "lora": 1e-2, "head": 3e-3},
}


# ----------------------------------------------------------------------------
# The methods: name -> (set a fresh copy of the base up for training, kind of learning rate).


def _lora(r, targets, seed_offset=0):
    def setup(model):
        return apply_lora(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules=targets))
    setup.r, setup.targets, setup.seed_offset = r, targets, seed_offset
    return setup


def _full(model):
    return model


def _output_layer_only(model):
    freeze(model)
    unfreeze(model, "lm_head.*")
    return model


def _attention_fixed(model):
    """Source article 001's split: the attention matrices are the fixed group, everything else trains."""
    unfreeze(model)
    freeze(model, "blocks.*.attn.*")
    return model


METHODS = {
    "no adaptation": (None, None),
    "output layer only": (_output_layer_only, "head"),
    "full fine-tuning": (_full, "full"),
    **{f"LoRA r={r} (q, v)": (_lora(r, QV), "lora") for r in (1, 2, 4, 8, 16)},
    **{f"LoRA r={r} (all linear)": (_lora(r, "all-linear"), "lora") for r in (1, 2, 4, 8)},
    "LoRA r=8 (q, v, tok_emb, lm_head)": (_lora(8, QV + ["tok_emb", "lm_head"]), "lora"),
    "fixed attention (article 001)": (_attention_fixed, "full"),
    # For the LoRA paper's §7 measurements only:
    "LoRA r=64 (q, v)": (_lora(64, QV), "lora"),
    "LoRA r=8 (q, v), second seed": (_lora(8, QV, seed_offset=1), "lora"),
}
ANALYSIS_ONLY = ("LoRA r=64 (q, v)", "LoRA r=8 (q, v), second seed")

# The rows the default run shows, per task: enough to make each task's case in about a minute.
DEFAULT_ROWS = {
    "teacher": ["no adaptation", "full fine-tuning", "LoRA r=2 (q, v)"],
    "verse": ["no adaptation", "full fine-tuning", "LoRA r=4 (q, v)"],
    "verse or prose": ["no adaptation", "full fine-tuning", "LoRA r=2 (q, v)"],
    "histories": ["no adaptation", "full fine-tuning", "LoRA r=4 (q, v)", "LoRA r=1 (all linear)"],
}
# The default run's tasks: one per regime on real text, and the controlled case. Verse shows
# nothing at the demo's step count (docs/lora.md §7), so it runs with --all only, which keeps
# the default run within three minutes.
DEFAULT_TASKS = ("teacher", "verse or prose", "histories")
BUDGET = 0.01  # the share of the base's parameters a "tiny" adapter may train


def rows_for(task, config):
    return list(METHODS) if config.all else DEFAULT_ROWS[task]


# ----------------------------------------------------------------------------
# Running one method on one task.


def fresh_base(base_state, base_config):
    model = build_model("gpt", base_config)
    model.load_state_dict(base_state)
    return model


def adapt(task, name, base_state, base_config, config, progress=True):
    """Adapt a fresh copy of the base to ``task`` by method ``name``; returns (model, trainer or None)."""
    setup, kind = METHODS[name]
    model = fresh_base(base_state, base_config)
    if setup is None:
        return model.eval(), None
    backend.manual_seed(config.seed + getattr(setup, "seed_offset", 0))  # the adapter's initialisation
    setup(model)
    backend.manual_seed(config.seed)  # every method sees the same batches and dropout masks
    lr = config.learning_rates[task.name][kind]
    steps = config.adapt_iters
    schedule = TrainConfig(max_iters=steps, batch_size=config.batch_size, block_size=config.block_size, lr=lr,
                           min_lr=lr / 10, warmup_iters=max(1, steps // 10), eval_interval=max(1, steps // 3),
                           eval_iters=config.eval_iters, seed=config.seed)
    trained = task.wrap(model) if task.wrap else model  # what the Trainer runs: its loss is the task's metric
    trainer = Trainer(trained, schedule, task.train_batch, {"val": task.eval_batches}, log=lambda *_: None, progress=progress)
    trainer.fit()
    return model.eval(), trainer


def row(name, model, trainer, task):
    """One table row: what trained, how well, how fast."""
    setup = METHODS[name][0]
    _, trainable, percent = count_parameters(model)
    loss = trainer.history[-1]["val_loss"] if trainer else mean_loss(task.wrap(model) if task.wrap else model, task.eval_batches)
    return {
        "method": name,
        "target_modules": getattr(setup, "targets", None),
        "r": getattr(setup, "r", None),
        "trainable": trainable if setup else 0,
        "trainable_fraction": percent / 100 if setup else 0.0,
        "metric": loss,
        "step_ms": 1000 * statistics.median(trainer.step_seconds) if trainer else None,
        "history": trainer.history if trainer else [],
        **({"accuracy": task.score(model)} if task.score else {}),
    }


def recovered(rows):
    """recovered = (none − method) / (none − full): the share of full fine-tuning's gain (Eq. 10 in docs/lora.md).

    Where full fine-tuning gains nothing (its loss is not below the unadapted
    model's), there is no gain to share and every row's ``recovered`` is None.
    """
    by = {r["method"]: r["metric"] for r in rows}
    none, full = by["no adaptation"], by["full fine-tuning"]
    for r in rows:
        r["recovered"] = (none - r["metric"]) / (none - full) if none > full else None
    return rows


# ----------------------------------------------------------------------------
# The LoRA paper's §7, on one task.


def delta_weights(model, base_state, proj):
    """Per block, ΔW = W_adapted − W_base of ``proj``, as float64 arrays (LoRA: s·BA)."""
    out = []
    for layer in range(model.config.n_layer):
        name = f"blocks.{layer}.attn.{proj}"
        module = model.get_submodule(name)
        if hasattr(module, "delta_weights"):
            out.append(backend.asarray(module.delta_weights()["weight"], dtype=backend.float64))
        else:
            out.append(backend.asarray(module.weight.data - base_state[f"{name}.weight"], dtype=backend.float64))
    return out


def section7(models, base_state, headline):
    """φ(r=8, r=64) and between two seeds at r=8 (Eq. 11), ``headline``'s amplification factor (Eq. 15), full FT's ΔW spectrum."""
    result = {}
    pairs = {"phi_r8_r64": ("LoRA r=8 (q, v)", "LoRA r=64 (q, v)"),
             "phi_seeds": ("LoRA r=8 (q, v)", "LoRA r=8 (q, v), second seed")}
    for key, (a, b) in pairs.items():
        if a in models and b in models:
            # φ(1, 1): do the two updates' top input directions agree? Mean over blocks and over q, v.
            # Measured on ΔW = s·BA, not on A alone: after a few steps A is still mostly its random start.
            values = [float(subspace_similarity(la.delta_weights()["weight"], lb.delta_weights()["weight"])[0, 0])
                      for (_, la), (_, lb) in zip(lora_layers(models[a]), lora_layers(models[b]))]
            result[key] = sum(values) / len(values)
        else:
            result[key] = None
    if headline is not None:
        model, r = models[headline], METHODS[headline][0].r
        factors = [amplification_factor(dw, backend.asarray(base_state[f"blocks.{i}.attn.{proj}.weight"]), r)
                   for proj in ("q_proj", "v_proj") for i, dw in enumerate(delta_weights(model, base_state, proj))]
        result["amplification"] = sum(factors) / len(factors)
    else:
        result["amplification"] = None
    if "full fine-tuning" in models:
        spectra = {proj: [singular_values(dw) for dw in delta_weights(models["full fine-tuning"], base_state, proj)]
                   for proj in ("q_proj", "v_proj")}
        result["spectra"] = spectra
        result["energy_top8"] = {proj: sum(energy_fraction(s, 8) for s in ss) / len(ss) for proj, ss in spectra.items()}
    return result


# ----------------------------------------------------------------------------
# The demo.


def run_demo(config, log=print, progress=True):
    """Run every task; returns the dict written to ``<out>/demo.json``."""
    out = pathlib.Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    base, tokenizer = pretrained.load("shakespeare")
    meta = pretrained.info("shakespeare")
    base_state, base_config = base.state_dict(), meta["model_config"]
    log(f"The base: a character GPT of {sum(p.size for p in base.parameters()):,} parameters pretrained on "
        f"{', '.join(meta['genres'])} ({meta['val_loss']:.3f} nats/char on their validation plays)")
    if config.quick:
        log("Quick run: a smoke test with tiny windows and a few steps. Its numbers are not results.")
    result = {"base": {"name": "shakespeare", "sha256": pretrained.sha256("shakespeare"), "val_loss": meta["val_loss"]},
              "quick": config.quick, "all": config.all, "config": dataclasses.asdict(config), "tasks": []}
    for task_name in config.tasks:
        backend.manual_seed(config.seed)
        task = TASKS[task_name](base, tokenizer, config)
        log(f"\n== {task.name} ({task.regime}): {task.description}")
        rows, models = [], {}
        for name in rows_for(task.name, config) + (list(ANALYSIS_ONLY) if config.all else []):
            model, trainer = adapt(task, name, base_state, base_config, config, progress)
            if name not in ANALYSIS_ONLY:
                rows.append(row(name, model, trainer, task))
            models[name] = model
        recovered(rows)
        entry = {"name": task.name, "regime": task.regime, "description": task.description,
                 "metric": task.metric, "rows": rows}
        headline = headline_adapter(models)
        analysis = section7(models, base_state, headline)
        entry.update({k: analysis[k] for k in ("phi_r8_r64", "phi_seeds", "amplification")})
        entry["energy_top8"] = analysis.get("energy_top8")
        if task.planted is not None:
            entry["phi_planted"] = {name: planted_similarity(models[name], task.planted)
                                    for name in models if name.startswith("LoRA") and "(q, v)" in name}
        entry["headline"] = headline
        entry["merge_max_diff"] = _merge_check(models.get(headline), task)
        entry["samples"] = _samples(base, models.get(headline), tokenizer, config)
        if not config.quick:
            entry["plots"] = demo_plots.save_task(out, task.name, rows, analysis)
        result["tasks"].append(entry)
        _report(entry, log, config.quick)
    result["seconds"] = round(time.perf_counter() - started, 1)
    for entry in result["tasks"]:
        for r in entry["rows"]:
            r.pop("history", None)  # the curves are in the plots; demo.json keeps the final numbers
    atomic_write(out / "demo.json", lambda f: f.write(json.dumps(result, indent=1, default=_json).encode("utf-8")))
    log("\n" + finding(result))
    log(f"\nEvery number above is in {out / 'demo.json'}.")
    return result


def _json(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def headline_adapter(models):
    """The q, v adapter the demo merges, samples from and measures: r = 8 if it ran, else the largest row.

    The adapters that only serve §7 (r = 64, the second seed) are never the headline.
    """
    if "LoRA r=8 (q, v)" in models:
        return "LoRA r=8 (q, v)"
    qv = [name for name in models if name.startswith("LoRA r=") and name.endswith("(q, v)") and name not in ANALYSIS_ONLY]
    return max(qv, key=lambda name: METHODS[name][0].r) if qv else None


def _merge_check(model, task):
    """max |merged − unmerged| of an adapter's logits on one evaluation batch."""
    if model is None:
        return None
    x = task.eval_batches[0][0]
    with no_grad():
        unmerged = model(x)[0].data.copy()
        merge_lora(model)
        merged = model(x)[0].data.copy()
        unmerge_lora(model)
    return float(abs(merged - unmerged).max())


def _samples(base, adapted, tokenizer, config):
    """The same seeded sample from the base and from the r=8 adapter's model."""
    prompt = backend.asarray([tokenizer.encode("\n")], dtype=backend.int64)
    samples = {}
    for name, model in (("before", base), ("after", adapted)):
        if model is None:
            continue
        backend.manual_seed(config.seed)
        ids = model.generate(prompt, config.sample_chars, temperature=0.8)
        samples[name] = tokenizer.decode(backend.to_numpy(ids[0]).tolist())
    return samples


def markdown_table(rows, quick=False):
    """The task's table; a classification also shows each row's validation accuracy."""
    accuracy = "accuracy" in rows[0]
    lines = ["| method | trainable params | metric | recovered |" + (" accuracy |" if accuracy else "") + " ms / step (median) |",
             "|---|---:|---:|---:|" + ("---:|" if accuracy else "") + "---:|"]
    for r in rows:
        trainable = f"{r['trainable']:,} ({100 * r['trainable_fraction']:.2f}%)" if r["trainable"] else "0"
        rec = "–" if quick or r["recovered"] is None else f"{r['recovered']:.0%}"
        acc = (" –" if quick else f" {r['accuracy']:.1%}") + " |" if accuracy else ""
        ms = f"{r['step_ms']:.0f}" if r["step_ms"] is not None else "–"
        lines.append(f"| {r['method']} | {trainable} | {r['metric']:.4f} | {rec} |{acc} {ms} |")
    return "\n".join(lines)


def _report(entry, log, quick):
    log(markdown_table(entry["rows"], quick))
    log("(ms / step: the median step on this machine while it ran; other load makes it noisy)")
    if entry["merge_max_diff"] is not None:
        log(f"merged vs unmerged {entry['headline']} logits: max |difference| = {entry['merge_max_diff']:.1e}")
    if quick:
        return
    if entry.get("phi_planted"):
        log("φ between each adapter's input subspace and the planted ΔW*'s (1: found it exactly): "
            + ", ".join(f"{k.split(' (')[0]} {v:.2f}" for k, v in entry["phi_planted"].items()))
    for key, text in (("phi_r8_r64", "φ(1,1) between the r=8 and r=64 adapters"),
                      ("phi_seeds", "φ(1,1) between two seeds at r=8"),
                      ("amplification", f"amplification ‖ΔW‖_F / ‖UᵀWV‖_F of {entry['headline']}")):
        if entry[key] is not None:
            log(f"{text}: {entry[key]:.2f}")
    if entry.get("energy_top8"):
        log("share of full fine-tuning's ‖ΔW‖² in its top 8 directions: "
            + ", ".join(f"{k} {v:.0%}" for k, v in entry["energy_top8"].items()))
    for name, text in entry["samples"].items():
        log(f"sample {name}: {text[:120]!r}")


def finding(result):
    """The demo's conclusion, in plain words, from its own numbers."""
    if result["quick"]:
        return "Quick run done: every step ran. Run without --quick for the measurements."
    lines, best_tiny = [], {}
    for entry in result["tasks"]:
        tiny = [r for r in entry["rows"] if r["r"] and r["target_modules"] == QV and r["trainable_fraction"] <= BUDGET
                and r["recovered"] is not None]
        gain = entry["rows"][0]["metric"] - next(r["metric"] for r in entry["rows"] if r["method"] == "full fine-tuning")
        if gain <= 0:
            lines.append(f"{entry['name']} ({entry['regime']}): full fine-tuning does not improve on the base here "
                         f"({gain:+.4f}), so there is no gain for LoRA to recover.")
        elif tiny:
            best = best_tiny[entry["name"]] = max(tiny, key=lambda r: r["recovered"])
            lines.append(f"{entry['name']} ({entry['regime']}): {best['method']}, {100 * best['trainable_fraction']:.2f}% of the "
                         f"parameters, recovers {best['recovered']:.0%} of full fine-tuning's gain.")
            if "accuracy" in best:
                full = next(r for r in entry["rows"] if r["method"] == "full fine-tuning")
                lines.append(f"   Validation accuracy: {best['accuracy']:.1%} against {full['accuracy']:.1%} for full fine-tuning.")
        if entry["regime"] == "new-content":
            enough = [r for r in entry["rows"] if r["r"] and r["recovered"] is not None and r["recovered"] >= 0.9]
            cheapest = min(enough, key=lambda r: r["trainable"]) if enough else None
            lines.append(f"   The cheapest LoRA row that recovers 90% here: {cheapest['method']} ({cheapest['trainable']:,} numbers)."
                         if cheapest else "   No LoRA row run here recovers 90% of full fine-tuning's gain.")
    low = [best_tiny[e["name"]]["recovered"] for e in result["tasks"] if e["regime"] == "low-rank" and e["name"] in best_tiny]
    new = [best_tiny[e["name"]]["recovered"] for e in result["tasks"] if e["regime"] == "new-content" and e["name"] in best_tiny]
    if low and new:
        lines.append(f"So: where the base already knows what a task needs, LoRA on q, v with under 1% of the parameters "
                     f"recovers {min(low):.0%} or more of full fine-tuning's gain; where the task brings new content it "
                     f"recovers {max(new):.0%}.")
    return "\n".join(lines)
