"""``python -m minilora compare``: article 003's comparison of LoRA with its relatives and with making a model small.

Article 003 (§9.6) claims, without a
number, that distillation shrinks a model best but may cost accuracy, and
that pruning shrinks it well but may cost a lot. This runs the comparison on
two tasks (minilora/experiments/compare_tasks.py): by default the demo's two
tasks on the shipped base, the histories (new content) and the planted
rank-2 teacher (low rank); with ``--quick``, two tiny tasks on generated
corpora. It prints one table:

* adaptation methods, from the same pretrained model, counted by their
  **trainable** parameters: full fine-tuning, the output layer alone, LoRA,
  SVDLinear (singular-value shifts δ) and OFT, the last three at one matched
  budget (Eq. 1 in docs/compare.md);
* smaller models, counted by the parameters they **store**: the pretrained
  model compressed by truncated SVD, or magnitude-pruned to the same stored
  count, then fine-tuned (masks held); and knowledge distillation from the
  fully fine-tuned model into a narrower student of about that size, next to
  the same student trained without a teacher.

Every method trains for the same number of steps on the same batches.

Then the accuracy-under-attack experiment of minilora/experiments/robustness.py (seed
004), whose plot is saved beside the table. docs/compare.md shows a run and reads it.
"""

import dataclasses
import json
import os
import pathlib
import platform
import statistics
import time

from minilora import backend, validate
from minilora.adapters import count_parameters, linear_targets
from minilora.experiments import compare_plots
from minilora.experiments import robustness as robustness_experiment
from minilora.experiments.compare_tasks import (
    DomainShiftConfig,
    DomainShiftTask,
    SentimentConfig,
    SentimentTask,
    ShippedBaseConfig,
    ShippedBaseTask,
    add_recovery,
    train_config,
)
from minilora.lora import LoraConfig, apply_lora
from minilora.lowrank import SVDConfig, apply_svd_finetuning, compress_model
from minilora.nn import freeze, unfreeze
from minilora.orthogonal import OFTConfig, apply_oft, oft_layers
from minilora.prune import count_nonzero, magnitude_prune
from minilora.train import TrainConfig
from minilora.train.student import distill

LORA_TARGETS = ["q_proj", "k_proj", "v_proj"]  # r = 1: 2C numbers per C×C layer, 3 layers: 6C per block
OFT_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]  # b = 4: C/4 blocks of 6 free angles, 4 layers: 6C per block
OFT_BLOCK = 4

METHODS = [
    "no adaptation", "full fine-tuning", "output layer only",
    "LoRA r=1 (q, k, v)", "LoRA r=1 (q, k, v, tok_emb)", "SVDLinear δ (all linear)", f"OFT b={OFT_BLOCK} (q, k, v, o)",
    "truncated SVD, then fine-tuning", "magnitude pruning, then fine-tuning",
    "distillation into a student", "the student alone",
]  # fmt: skip


@dataclasses.dataclass
class CompareConfig:
    seed: int = 0  # seeds the corpora, every model and every batch
    out: str = "minilora-compare"  # where compare.json and the plots go
    tasks: tuple = ("histories", "teacher")  # the shipped base's tasks; quick() runs "domain shift" and "sentiment"
    shipped: ShippedBaseConfig = None  # the shipped base's tasks' steps and learning rates
    domain: DomainShiftConfig = None  # the generated domain-shift task's sizes and steps
    sentiment: SentimentConfig = None  # the generated sentiment task's sizes and steps
    compress_divisor: int = 4  # truncated SVD keeps rank n_embd / compress_divisor in every block's Linear layers
    temperature: float = 2.0  # distillation temperature T (Eq. 5 in docs/compare.md)
    alpha: float = 0.5  # weight of the soft-target term
    robustness: dict = None  # keyword arguments for robustness.run_robustness_experiment (None: its defaults)
    run_robustness: bool = True  # False skips that experiment (and its plot)
    tiny: bool = False  # True for the few-second run that quick() makes, for tests

    def __post_init__(self):
        validate.integer(type(self).__name__, "seed", self.seed, 0)  # before its tasks' configs take it
        unknown = set(self.tasks) - set(TASKS)
        if unknown:
            raise ValueError(f"unknown compare task(s) {sorted(unknown)}; choose from {sorted(TASKS)}")
        self.shipped = dataclasses.replace(self.shipped or ShippedBaseConfig(), seed=self.seed)
        if self.domain is None:
            self.domain = DomainShiftConfig()
        if self.sentiment is None:
            self.sentiment = SentimentConfig()
        self.domain = dataclasses.replace(self.domain, seed=self.seed, out=self.out)
        self.sentiment = dataclasses.replace(self.sentiment, seed=self.seed)
        self.robustness = {"seeds": tuple(self.seed + i for i in range(3)), **(self.robustness or {})}

    @classmethod
    def quick(cls, seed=0, out="minilora-compare"):
        """A run of a few seconds: the same steps, tiny models, few iterations."""
        tiny = TrainConfig(max_iters=12, batch_size=16, lr=3e-3, min_lr=3e-4, warmup_iters=2, eval_interval=12, eval_iters=1)
        robustness = dict(seeds=(seed,), eps_values=(0.0, 0.5), pgd_steps=2, n_eval=40, eps_warmup=0,
                          model_config=dict(encoder="transformer", n_layer=1, n_head=2, n_embd=8), train_config=tiny)  # fmt: skip
        domain = DomainShiftConfig.quick(n_layer=1, n_embd=16, pretrain_iters=20, adapt_iters=10)
        return cls(seed, out, ("domain shift", "sentiment"), None, domain, SentimentConfig.quick(), robustness=robustness, tiny=True)


# ----------------------------------------------------------------------------
# The adapters, at one budget


def _lora(targets):
    return lambda model, keep: apply_lora(model, LoraConfig(r=1, lora_alpha=2, target_modules=targets, modules_to_save=list(keep)))


def _svd(model, keep):
    apply_svd_finetuning(model, SVDConfig(target_modules="all-linear"))  # every Linear but the output layer: δ has min(in, out) = C numbers each
    unfreeze(model, [f"{name}.*" for name in keep])
    return model


def _oft(model, keep):
    return apply_oft(model, OFTConfig(target_modules=OFT_TARGETS, block_size=OFT_BLOCK, modules_to_save=list(keep)))


TASKS = {
    "histories": lambda config, progress: ShippedBaseTask("histories", config.shipped, progress),
    "teacher": lambda config, progress: ShippedBaseTask("teacher", config.shipped, progress),
    "domain shift": lambda config, progress: DomainShiftTask(config.domain, progress),
    "sentiment": lambda config, progress: SentimentTask(config.sentiment, progress),
}
ADAPTERS = dict(zip(METHODS[3:7], (_lora(LORA_TARGETS), _lora(LORA_TARGETS + ["tok_emb"]), _svd, _oft)))


def free_parameters(model):
    """Trainable numbers that can change the model: an OFT block's b² entries hold only b(b-1)/2 free angles (its skew part),
    the count of Eq. (1) in docs/compare.md."""
    trainable = count_parameters(model)[1]
    for _, layer in oft_layers(model):
        b = layer.block_size
        trainable -= layer.r * (b * b - b * (b - 1) // 2)
    return trainable


# ----------------------------------------------------------------------------
# One task, every method


def _timed(work):
    """(what ``work()`` returns, the wall-clock seconds it took)."""
    started = time.perf_counter()
    result = work()
    return result, time.perf_counter() - started


def run_task(task, config, log=print):
    """Pretrain, then run every method of METHODS on ``task``; returns a dict with one row per method.

    Every training run takes the task's ``adapt_iters`` steps on the same
    batches. A row's ``seconds`` is the wall time of setting the method up
    and training it; ``step_ms`` the median time of one step, which a burst
    of other load on the machine does not skew.
    """
    c, iters = task.config, task.config.adapt_iters
    log(f"\n{task.name}: {task.describe()}, then {len(METHODS)} methods of {iters} steps each")
    pretrain_seconds = task.pretrain()
    base = task.pretrained()
    full_size, heads = base.num_parameters(), base.config.n_head
    rows = []

    def add(method, counted, params, model, seconds=0.0, trainer=None, detail="", free=None):
        metrics = task.evaluate(model)
        step_ms = 1000 * statistics.median(trainer.step_seconds) if trainer else None
        rows.append(dict(method=method, counted=counted, params=params, free=params if free is None else free, percent=100.0 * params / full_size,
                         seconds=seconds, step_ms=step_ms, detail=detail, **metrics))  # fmt: skip
        log(f"  {method:36s} {counted or '-':9s} {params:>8,}  {task.metric} {metrics[task.metric]:.4f}  {seconds:5.1f} s")

    def adapt(method, setup, lr, detail=""):
        model = task.pretrained()
        trainer, seconds = _timed(lambda: task.train(setup(model), iters, lr))
        add(method, "trainable", count_parameters(model)[1], model, seconds, trainer, detail, free_parameters(model))
        return model

    add("no adaptation", "", 0, base)
    teacher = adapt("full fine-tuning", lambda m: m, c.full_lr)
    adapt("output layer only", lambda m: _only(m, task.output_layer), c.lora_lr, task.output_layer)
    keep = task.modules_to_save
    for method, setup in ADAPTERS.items():
        adapt(method, lambda m, setup=setup: setup(m, keep), c.lora_lr, "+ " + ", ".join(keep) if keep else "")

    # Smaller models. Compress the pretrained model by truncated SVD, or prune it to the same stored count
    # (Eq. 8 in docs/compare.md), then fine-tune what is left, masks held: article 003's "decompose, then fine-tune".
    rank = max(1, task.width // config.compress_divisor)
    model = task.pretrained()
    started = time.perf_counter()
    report = compress_model(model, rank=rank)  # every Linear but the output layer
    trainer = task.train(model, iters, c.full_lr)
    seconds = time.perf_counter() - started
    stored = report.model_params_after
    add("truncated SVD, then fine-tuning", "stored", stored, model, seconds, trainer, f"rank {rank}")
    model = task.pretrained()
    removed = report.model_params_before - report.model_params_after
    n_keep = sum(model.get_submodule(n).weight.size for n in linear_targets(model, "all-linear")) - removed
    started = time.perf_counter()
    magnitude_prune(model, n_keep=n_keep, scope="global")
    trainer = task.train(model, iters, c.full_lr)
    seconds = time.perf_counter() - started
    add("magnitude pruning, then fine-tuning", "stored", count_nonzero(model), model, seconds, trainer, f"{n_keep:,} linear weights kept")

    # A narrower student of about the compressed size, trained from scratch with and without the teacher.
    widths = range(heads, task.width, heads)  # every width the heads divide, narrower than the teacher
    width = min(widths, key=lambda w: abs(task.parameter_count(w) - stored))
    student = task.student(width)
    schedule = train_config(iters, c.pretrain_lr, task.batch_size, task.block_size, task.seed)
    backend.manual_seed(task.seed)  # the same batches as every other run
    trainer, seconds = _timed(lambda: distill(teacher, student, task.train_batch, schedule, None, config.temperature, config.alpha,
                                              log=lambda *_: None, progress=task.progress))  # fmt: skip
    add("distillation into a student", "stored", student.num_parameters(), student, seconds, trainer, f"width {width}")
    student = task.student(width)
    trainer, seconds = _timed(lambda: task.train(student, iters, c.pretrain_lr))
    add("the student alone", "stored", student.num_parameters(), student, seconds, trainer, f"width {width}")
    if not task.higher_is_better:
        add_recovery(rows, task.metric)
    return dict(task=task.name, metric=task.metric, metric_label=task.metric_label, higher_is_better=task.higher_is_better, full_size=full_size,
                pretrain_seconds=pretrain_seconds, pretrain_loss=task.pretrain_loss, rows=rows)  # fmt: skip


def _only(model, name):
    """Freeze everything but the module ``name`` (the output layer: a linear probe)."""
    freeze(model)
    unfreeze(model, f"{name}.*")
    return model


# ----------------------------------------------------------------------------
# The table


def _params_cell(row):
    if row["counted"] == "":
        return "–"
    free = f", {row['free']:,} free" if row["free"] != row["params"] else ""
    return f"{row['params']:,} ({row['percent']:.1f}%{free})"


def markdown_table(results, smoke_test=False):
    """One row per method; for each task its parameter count, metric, recovered share (a loss) and wall time.

    A smoke test shows no recovered share or accuracy: at its tiny sizes they are not results.
    """
    tasks = list(results.values())
    header, rule = ["method", "counts"], ["---", "---"]
    for t in tasks:
        columns = [f"{t['task']}: params", t["metric_label"]] + ([] if t["higher_is_better"] else ["recovered"]) + ["s"]
        header += columns
        rule += ["---:"] * len(columns)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
    for i, first in enumerate(tasks[0]["rows"]):
        cells = [first["method"], first["counted"] or "–"]
        for t in tasks:
            r = t["rows"][i]
            if t["higher_is_better"]:
                cells += [_params_cell(r), "–" if smoke_test else format(r[t["metric"]], ".1%")]
            else:
                cells += [_params_cell(r), format(r[t["metric"]], ".4f"), "–" if smoke_test else format(r["recovery"], ".0%")]
            cells.append(f"{r['seconds']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# Everything


def machine():
    """Where the numbers were measured."""
    return dict(platform=platform.platform(), python=platform.python_version(), cpus=os.cpu_count(), backend=backend.current(),
                load_average=list(os.getloadavg()) if hasattr(os, "getloadavg") else None)  # fmt: skip


def run_compare(config, log=print, progress=True):
    """Both tasks, the table, the robustness experiment, the JSON and the plots; returns the results dict."""
    out = pathlib.Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = {}
    for name in config.tasks:
        task = TASKS[name](config, progress)
        results[name] = run_task(task, config, log)
    table = markdown_table(results, smoke_test=config.tiny)
    smoke = ("Smoke test (--quick): tiny models and a few steps check that every method runs. "
             "These numbers are not results; run without --quick for the table in docs/compare.md.")
    log("\n" + table + ("\n\n" + smoke if config.tiny else ""))

    plots = [compare_plots.methods_chart(out / "compare_methods.png", results)]
    robustness = None
    if config.run_robustness:
        log(f"\nAccuracy under attack (minilora/experiments/robustness.py), seeds {list(config.robustness['seeds'])}")
        robustness = robustness_experiment.run_robustness_experiment(**config.robustness, log=lambda line: log("  " + line))
        log("\n" + robustness_experiment.robustness_table(robustness) + ("\n\n" + smoke if config.tiny else ""))
        plots.append(robustness_experiment.plot_robustness(robustness, out / "compare_robustness.png"))
    result = dict(seed=config.seed, quick=config.tiny, config=_jsonable(dataclasses.asdict(config)), machine=machine(),
                  tasks=results, table=table, robustness=robustness, plots=[str(p) for p in plots],
                  seconds=round(time.perf_counter() - started, 1))  # fmt: skip
    path = out / "compare.json"
    path.write_text(json.dumps(_jsonable(result), indent=1, ensure_ascii=False))
    log("\n" + "\n".join(f"wrote {p}" for p in [path, *plots]))
    return result


def _jsonable(value):
    """Dataclasses, tuples and numpy scalars as plain JSON values."""
    if dataclasses.is_dataclass(value):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    return value
