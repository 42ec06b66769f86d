"""``python -m minilora demo``: pretrain a small GPT on domain A, adapt it to domain B
in several ways, and look at why low-rank adaptation works.

1. Pretrain on domain A (narrative prose).
2. Adapt to domain B (a ship's log as a play script) by: no adaptation, full
   fine-tuning, LoRA with r = 1, 2, 4, 8 on q_proj and v_proj, LoRA on every
   linear layer, and article 001's split (attention fixed, the rest trainable).
3. One Markdown table: trainable parameters, validation loss on B and on A
   (forgetting), time per step, and the size of what must be stored.
4. Merge an adapter into the base weights and check the outputs agree.
5. The LoRA paper's §7: the spectrum of full fine-tuning's ΔW (how much
   lies in a few directions) and the subspace similarity of adapters of
   different ranks (docs/lora.md).
"""

import dataclasses
import os
import pathlib
import statistics

from minilora import backend
from minilora.autograd.engine import no_grad
from minilora.data import CharTokenizer, two_domain_corpus
from minilora.experiments import demo_plots
from minilora.lora import LoraConfig, apply_lora, count_parameters, merge_lora, save_adapter, unmerge_lora
from minilora.lora.analysis import energy_fraction, singular_values, subspace_similarity
from minilora.models import GPT, GPTConfig
from minilora.nn import freeze, unfreeze
from minilora.train import TrainConfig, Trainer
from minilora.train.lm import encode_corpus, lm_batches


@dataclasses.dataclass
class DemoConfig:
    seed: int = 0  # seeds the corpus, the model and every batch
    out: str = "minilora-demo"  # where plots and adapters go
    n_layer: int = 4  # GPT blocks
    n_head: int = 4  # attention heads
    n_embd: int = 64  # model width
    block_size: int = 64  # context length
    batch_size: int = 12  # sequences per step
    pretrain_iters: int = 700  # steps on domain A
    adapt_iters: int = 300  # steps on domain B, for every method
    eval_iters: int = 8  # evaluation batches per domain
    pretrain_lr: float = 2e-3  # peak learning rate of pretraining
    full_lr: float = 1e-3  # peak learning rate of full fine-tuning and article 001's split
    lora_lr: float = 1e-2  # peak learning rate of the LoRA runs (small factors tolerate, and need, more)

    @classmethod
    def quick(cls, **overrides):
        """A run of a few seconds, for tests: the same steps, with tiny sizes and few iterations."""
        small = dict(n_layer=2, n_head=2, n_embd=32, block_size=32, batch_size=8, pretrain_iters=60, adapt_iters=20, eval_iters=2)
        return cls(**{**small, **overrides})


def methods():
    """(name, how to set a pretrained model up for adaptation, learning-rate key)."""
    qv = ["q_proj", "v_proj"]
    table = [("no adaptation", None, None), ("full fine-tuning", lambda m: m, "full_lr")]
    for r in (1, 2, 4, 8):
        table.append((f"LoRA r={r} (q, v)", _lora(LoraConfig(r=r, lora_alpha=2 * r, target_modules=qv)), "lora_lr"))
    table.append(("LoRA r=2 (all linear)", _lora(LoraConfig(r=2, lora_alpha=4, target_modules="all-linear")), "lora_lr"))
    # Domain B brings new characters and formats; adapting the embedding and the
    # output layer too (a few hundred numbers each at r=8) is what helps most.
    in_out = LoraConfig(r=8, lora_alpha=16, target_modules=qv + ["tok_emb", "lm_head"])
    table.append(("LoRA r=8 (q, v, tok_emb, lm_head)", _lora(in_out), "lora_lr"))
    table.append(("article 001's split (attention fixed)", _attention_fixed, "full_lr"))
    return table


def _lora(config):
    return lambda model: apply_lora(model, config)


def _attention_fixed(model):
    """Article 001: the self-attention matrices are the fixed group, everything else trains."""
    unfreeze(model)
    freeze(model, "blocks.*.attn.*")
    return model


def run_demo(config, log=print, progress=True, smoke_test=False):
    """Run every step; returns a dict of results (rows of the table, analysis, plot paths)."""
    out = pathlib.Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    backend.manual_seed(config.seed)
    text_a, text_b = two_domain_corpus(seed=config.seed)
    tokenizer = CharTokenizer.fit(text_a + text_b)  # one vocabulary for both domains
    _, train_a, val_a = encode_corpus(text_a, tokenizer)
    _, train_b, val_b = encode_corpus(text_b, tokenizer)
    model_config = GPTConfig(tokenizer.vocab_size, config.block_size, config.n_layer, config.n_head, config.n_embd)

    def train_config(iters, lr):
        return TrainConfig(max_iters=iters, batch_size=config.batch_size, block_size=config.block_size, lr=lr, min_lr=lr / 10,
                           warmup_iters=min(50, iters // 10), eval_interval=max(1, iters // 6), eval_iters=config.eval_iters, seed=config.seed)  # fmt: skip

    # 1. Pretrain on A.
    log(f"\n1. Pretraining a GPT ({config.n_layer} layers, width {config.n_embd}) on domain A, {config.pretrain_iters} steps")
    base = GPT(model_config)
    cfg = train_config(config.pretrain_iters, config.pretrain_lr)
    batch_a, evals_a = lm_batches(train_a, val_a, config.block_size, config.batch_size, config.eval_iters, config.seed)
    Trainer(base, cfg, batch_a, {"A": evals_a["val"]}, log=lambda *_: None, progress=progress).fit()
    pretrained = base.state_dict()

    # 2. Adapt to B, every method from the same pretrained weights.
    batch_b, evals_b = lm_batches(train_b, val_b, config.block_size, config.batch_size, config.eval_iters, config.seed)
    eval_sets = {"B": evals_b["val"], "A": evals_a["val"]}
    rows, models, histories = [], {}, {}
    log(f"\n2. Adapting to domain B, {config.adapt_iters} steps per method")
    for name, setup, lr_key in methods():
        backend.manual_seed(config.seed)
        model = GPT(model_config)
        model.load_state_dict(pretrained)
        if setup is not None:
            setup(model)
            log(f"   {name}")
        backend.manual_seed(config.seed)  # apply_lora draws random numbers: reseed so every method sees the same batches
        lr = getattr(config, lr_key or "full_lr")
        trainer = Trainer(model, train_config(config.adapt_iters, lr), batch_b, eval_sets, log=lambda *_: None, progress=progress)
        if setup is None:
            losses, step_ms = trainer.evaluate(), None
            histories[name] = [{"step": 0, **{f"{k}_loss": v for k, v in losses.items()}}]
        else:
            histories[name] = trainer.fit()
            losses = {k: histories[name][-1][f"{k}_loss"] for k in ("B", "A")}
            step_ms = 1000 * statistics.median(trainer.step_seconds)  # the median shrugs off bursts of other load
        total, trainable, pct = count_parameters(model)
        rows.append(dict(method=name, trainable=trainable if setup else 0, percent=pct if setup else 0.0, loss_b=losses["B"], loss_a=losses["A"],
                         step_ms=step_ms, stored_bytes=_stored_size(model, name, out, setup is not None)))  # fmt: skip
        models[name] = model
    _add_recovery(rows)

    # 3. The table.
    table = markdown_table(rows, smoke_test)
    log("\n3. Results (validation losses in nats per character)\n\n" + table)
    log("\n   ms / step is the median over the timed steps, on a shared machine: noisy, a rough guide only "
        "(`python -m minilora bench` measures speed properly).")
    if smoke_test:
        log("   " + SMOKE_TEST)

    # 4. Merging.
    lora8 = models["LoRA r=8 (q, v)"].eval()
    idx = evals_b["val"][0][0]
    with no_grad():
        unmerged = lora8(idx)[0].data.copy()
        merge_lora(lora8)
        merged = lora8(idx)[0].data.copy()
        unmerge_lora(lora8)
    merge_diff = float(abs(merged - unmerged).max())
    log(f"\n4. Merged vs unmerged LoRA r=8 outputs: max |difference| = {merge_diff:.2e} (float32)")

    # 5. Why it works.
    analysis = analyse(models, pretrained, config.n_layer)
    log("\n5. Why a low rank is enough (the LoRA paper, §7)")
    for proj in ("q_proj", "v_proj"):
        fractions = ", ".join(f"r={r}: {analysis['energy'][proj][r]:.0%}" for r in (1, 2, 4, 8))
        log(f"   full fine-tuning's ΔW for {proj}, share of ‖ΔW‖² in the top r directions (mean over layers): {fractions}")
    for proj in ("q_proj", "v_proj"):
        phi = analysis["similarity"][proj]["r=8 vs r=4"]
        log(f"   {proj}: subspace similarity φ(1, 1) of the r=8 and r=4 adapters (last layer) = {phi[0, 0]:.2f}; "
            f"a random pair of directions in ℝ^{config.n_embd} gives ~{1 / config.n_embd:.2f}")  # fmt: skip

    # 6. Pictures.
    plots = demo_plots.save_all(out, histories, analysis)
    log("\n6. Plots\n" + "\n".join(f"   {p}" for p in plots))
    best = _best_within_budget(rows)
    if smoke_test:
        log("\nSmoke test finished: every step ran. Run without --quick for the finding.")
    elif best:
        log(f"\nFinding: training {best['percent']:.1f}% of the parameters, {best['method']} recovers {best['recovery']:.0%} "
            "of full fine-tuning's improvement on domain B (docs/lora.md §6-7 explains what limits it).")
    return dict(rows=rows, table=table, merge_diff=merge_diff, analysis=analysis, plots=plots)


SMOKE_TEST = ("Smoke test (--quick): a tiny model trained for a few steps, to check that every step runs. "
              "Its numbers are not results, so no recovered share is shown; run without --quick for those.")


def _stored_size(model, name, out, adapted):
    """Bytes one must keep to reproduce the adapted model, given the pretrained one."""
    if not adapted:
        return 0
    if getattr(model, "lora_config", None) is not None:
        directory = save_adapter(model, out / "adapters" / _slug(name))
        return os.path.getsize(directory / "adapter.npz")
    # Full fine-tuning and article 001's split store every trainable parameter, as float32.
    return sum(p.size * p.data.itemsize for p in model.parameters() if p.requires_grad)


def _slug(name):
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-").replace("--", "-")


def _add_recovery(rows):
    """recovery = (loss_none - loss_method) / (loss_none - loss_full): the share of full FT's gain (Eq. 10 in docs/lora.md)."""
    none = next(r for r in rows if r["method"] == "no adaptation")["loss_b"]
    full = next(r for r in rows if r["method"] == "full fine-tuning")["loss_b"]
    for r in rows:
        r["recovery"] = (none - r["loss_b"]) / (none - full) if none != full else float("nan")


def _best_within_budget(rows, budget=5.0):
    candidates = [r for r in rows if 0 < r["percent"] <= budget and r["method"].startswith("LoRA")]
    return max(candidates, key=lambda r: r["recovery"]) if candidates else None


def markdown_table(rows, smoke_test=False):
    """The results table; a smoke test's recovered shares are left out (its losses are not results)."""
    lines = [
        "| method | trainable params | val loss B | recovered | val loss A | ms / step (median, noisy) | stored |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        trainable = f"{r['trainable']:,} ({r['percent']:.1f}%)" if r["trainable"] else "0"
        ms = f"{r['step_ms']:.1f}" if r["step_ms"] is not None else "–"
        stored = _bytes(r["stored_bytes"]) if r["stored_bytes"] else "–"
        recovered = "–" if smoke_test else f"{r['recovery']:.0%}"
        lines.append(f"| {r['method']} | {trainable} | {r['loss_b']:.4f} | {recovered} | {r['loss_a']:.4f} | {ms} | {stored} |")
    return "\n".join(lines)


def _bytes(n):
    return f"{n / 1024:.1f} KiB" if n < 1024**2 else f"{n / 1024**2:.2f} MiB"


def analyse(models, pretrained, n_layer):
    """Spectra of full fine-tuning's ΔW and the similarity of adapters of different ranks."""
    full = dict(models["full fine-tuning"].named_parameters())
    spectra, energy, similarity = {}, {}, {}
    for proj in ("q_proj", "v_proj"):
        sigmas = []
        for layer in range(n_layer):
            name = f"blocks.{layer}.attn.{proj}.weight"
            sigmas.append(singular_values(full[name].data - pretrained[name]))
        spectra[proj] = sigmas
        energy[proj] = {r: sum(energy_fraction(s, r) for s in sigmas) / len(sigmas) for r in (1, 2, 4, 8)}
        last = f"blocks.{n_layer - 1}.attn.{proj}"
        a8 = models["LoRA r=8 (q, v)"].get_submodule(last).lora_A.data
        similarity[proj] = {
            f"r=8 vs r={r}": subspace_similarity(a8, models[f"LoRA r={r} (q, v)"].get_submodule(last).lora_A.data) for r in (1, 2, 4)
        }
    return {"spectra": spectra, "energy": energy, "similarity": similarity}
