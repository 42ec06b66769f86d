"""LoRA on a real pretrained encoder: all-MiniLM-L6-v2 classifies speeches of the plays by genre.

The task: is a speech from a history or a comedy? Speeches of at least
``min_chars`` characters, their first ``max_length`` WordPiece tokens, split by
whole plays (minilora.data.plays.SPLITS), so no test speech shares a play with
a training one. A linear head reads the model's sentence embedding (Eq. E4 in
docs/pretrained.md) and every row trains it; the rows differ in what else trains:

* the linear probe: nothing else (the encoder is frozen; its embeddings are
  computed once and the head is trained on them to convergence);
* full fine-tuning: every encoder parameter;
* LoRA on q_proj and v_proj at r = 1, 2, 4, 8, and on every Linear at r = 8.

Then the LoRA paper's §7 measurements on this model (Eq. 11 in docs/lora.md):
the spectrum of full fine-tuning's ΔW for query and value, φ between the
r = 8 and r = 64 adapters, φ between two seeds at r = 8, and the amplification
factor ‖ΔW‖_F / ‖UᵀWVᵀ‖_F of the r = 8 update (Eq. 12 in docs/lora.md).

    python -m minilora.experiments.minilm_lora --steps 250 --out minilm-lora
"""

import argparse
import dataclasses
import json
import os
import pathlib
import time

import minilora as ml
from minilora import backend
from minilora.autograd import ops
from minilora.data import plays
from minilora.lora import (
    LoraConfig,
    apply_lora,
    count_parameters,
    lora_layers,
    merge_and_unload,
    save_adapter,
    weights_path,
)
from minilora.lora.analysis import amplification_factor, singular_values, subspace_similarity
from minilora.nn.layers import Linear
from minilora.nn.module import Module, evaluating
from minilora.optim import AdamW


@dataclasses.dataclass
class PlaysLoraConfig:
    genres: tuple = ("histories", "comedies")  # label 0, label 1
    min_chars: int = 120  # speeches shorter than this are left out
    max_length: int = 64  # tokens per speech, [CLS] and [SEP] included
    steps: int = 250  # training steps per row
    batch_size: int = 16  # speeches per step
    lr_head: float = 1e-2  # AdamW on the head (its input is a unit vector, so its weights must grow)
    lr_full: float = 5e-5  # AdamW on the encoder in full fine-tuning
    lr_lora: float = 1e-3  # AdamW on the LoRA factors
    lora_alpha: float = 16.0  # α; the update is scaled by α/r
    ranks: tuple = (1, 2, 4, 8)  # LoRA ranks on q_proj, v_proj
    phi_rank: int = 64  # the large adapter φ compares r = 8 against
    probe_steps: int = 2000  # head-only steps on cached embeddings (cheap, so trained to convergence)
    eval_limit: int = 0  # if > 0, at most this many speeches per held-out split (a reduced run)
    probe_limit: int = 0  # if > 0, the probe's head trains on the embeddings of this many training speeches
    seed: int = 0  # seeds the head, the adapters and the batches
    out: str = "minilm-lora"  # directory for results.json, adapters and plots


def speeches(config, split):
    """(texts, labels) of one split: every long-enough speech of the chosen genres."""
    texts, labels = [], []
    for label, genre in enumerate(config.genres):
        for play in plays.load_plays(genre, split):
            for _, lines in play.speeches():
                text = " ".join(lines)
                if len(text) >= config.min_chars:
                    texts.append(text)
                    labels.append(label)
    return texts, labels


def build_task(tokenizer, config):
    """{split: (input_ids, attention_mask, labels)}, arrays of (n, max_length), (n, max_length), (n,)."""
    xp, task = backend.xp, {}
    rng = backend.new_generator(config.seed)
    for split in plays.SPLIT_NAMES:
        texts, labels = speeches(config, split)
        if split != "train" and config.eval_limit and len(texts) > config.eval_limit:
            keep = sorted(rng.choice(len(texts), config.eval_limit, replace=False).tolist())
            texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
        batch = tokenizer(texts, max_length=config.max_length)
        task[split] = (batch["input_ids"], batch["attention_mask"], xp.asarray(labels, dtype=backend.int64))
    return task


class GenreClassifier(Module):
    """A SentenceEncoder's embedding, then a Linear head to one logit per genre."""

    def __init__(self, sentence_encoder, n_classes=2):
        super().__init__()
        self.body = sentence_encoder
        self.head = Linear(sentence_encoder.encoder.config.n_embd, n_classes)

    def forward(self, input_ids, attention_mask, targets=None):
        logits = self.head(self.body(input_ids, attention_mask))  # (B, n_classes)
        return logits, None if targets is None else ops.cross_entropy(logits, targets)


def accuracy(model, data, batch_size=64):
    ids, mask, labels = data
    correct = 0
    with evaluating(model):
        for start in range(0, len(labels), batch_size):
            logits, _ = model(ids[start : start + batch_size], mask[start : start + batch_size])
            correct += int((logits.data.argmax(axis=-1) == labels[start : start + batch_size]).sum())
    return correct / len(labels)


def train(model, data, config, groups, steps, seed):
    """AdamW on ``groups`` for ``steps`` random batches; returns the mean step time in seconds."""
    ids, mask, labels = data
    optimizer = AdamW(groups, weight_decay=0.0)
    rng = backend.new_generator(seed)
    times = []
    model.train()
    for _ in range(steps):
        rows = backend.asarray(rng.integers(0, len(labels), config.batch_size))
        start = time.perf_counter()
        _, loss = model(ids[rows], mask[rows], labels[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    model.eval()
    steady = times[1:] or times  # the first step also allocates every buffer
    return sum(steady) / len(steady)


def lora_rows(config):
    """(row name, LoraConfig, seed) for every adapter the table and §7 need."""
    qv = ["q_proj", "v_proj"]
    rows = [(f"LoRA q,v r={r}", LoraConfig(r=r, lora_alpha=config.lora_alpha, target_modules=qv), config.seed) for r in config.ranks]
    rows.append(("LoRA all linear r=8", LoraConfig(r=8, lora_alpha=config.lora_alpha, target_modules="all-linear"), config.seed))
    rows.append((f"LoRA q,v r={config.phi_rank}", LoraConfig(r=config.phi_rank, lora_alpha=config.lora_alpha, target_modules=qv), config.seed))
    rows.append(("LoRA q,v r=8 seed 2", LoraConfig(r=8, lora_alpha=config.lora_alpha, target_modules=qv), config.seed + 1))
    return rows


def run(config, load=None, log=print):
    """Every row of the table, and the §7 measurements; writes results.json into ``config.out``."""
    from minilora.hub import load_sentence_encoder

    load = load or load_sentence_encoder
    out = pathlib.Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    base = load()
    task = build_task(base.tokenizer, config)
    sizes = {split: len(task[split][2]) for split in task}
    majority = max(float((task["test"][2] == c).mean()) for c in range(len(config.genres)))
    log(f"speeches: {sizes}; majority class on test {majority:.1%}")
    encoder_params = sum(p.size for p in base.encoder.parameters())
    pretrained = {n: backend.to_numpy(p.data).copy() for n, p in base.encoder.named_parameters()}
    rows, adapters = [], {}

    def record(name, model, trainable, step_time, stored, scores=None):
        scores = scores or {split: accuracy(model, task[split]) for split in ("val", "test")}
        row = {"name": name, "trainable": int(trainable), "percent": 100.0 * trainable / encoder_params,
               "val": scores["val"], "test": scores["test"], "step_s": step_time, "stored_bytes": int(stored)}  # fmt: skip
        rows.append(row)
        log(f"{time.strftime('%H:%M:%S')} {name:24s} trainable {trainable:>10,d}  val {row['val']:.1%}  test {row['test']:.1%}  step {step_time * 1e3:.0f} ms")

    # The linear probe: the frozen encoder's embeddings, computed once.
    ml.manual_seed(config.seed)
    model = GenreClassifier(base)
    base.requires_grad_(False)
    features = {}
    with evaluating(model):
        for split, (ids, mask, labels) in task.items():
            if split == "train" and config.probe_limit:
                keep = backend.asarray(backend.new_generator(config.seed).choice(len(labels), config.probe_limit, replace=False))
                ids, mask, labels = ids[keep], mask[keep], labels[keep]
            chunks = [base(ids[s : s + 64], mask[s : s + 64]).data for s in range(0, len(labels), 64)]
            features[split] = (backend.xp.concatenate(chunks), labels)
    step = train_probe(model.head, features["train"], config)
    head = sum(p.size for p in model.head.parameters())
    record("linear probe", None, head, step, 4 * head, {s: probe_accuracy(model.head, features[s]) for s in ("val", "test")})

    # Full fine-tuning.
    ml.manual_seed(config.seed)
    model = GenreClassifier(load())
    groups = [{"params": list(model.body.parameters()), "lr": config.lr_full}, {"params": list(model.head.parameters()), "lr": config.lr_head}]
    step = train(model, task["train"], config, groups, config.steps, config.seed)
    record("full fine-tuning", model, encoder_params, step, 4 * encoder_params)
    full = {n: backend.to_numpy(p.data) for n, p in model.body.encoder.named_parameters()}
    del model

    # LoRA rows.
    for name, lora_config, seed in lora_rows(config):
        ml.manual_seed(seed)
        model = GenreClassifier(load())
        apply_lora(model.body.encoder, lora_config)
        lora_params = [p for p in model.body.parameters() if p.requires_grad]
        groups = [{"params": lora_params, "lr": config.lr_lora}, {"params": list(model.head.parameters()), "lr": config.lr_head}]
        step = train(model, task["train"], config, groups, config.steps, seed)
        stored = os.path.getsize(weights_path(save_adapter(model.body.encoder, out / "adapters" / name.replace(" ", "_").replace(",", ""))))
        record(name, model, count_parameters(model.body.encoder)[1], step, stored)
        adapters[name] = {n: (backend.to_numpy(m.lora_A.data), backend.to_numpy(m.lora_B.data), m.scaling) for n, m in lora_layers(model.body.encoder)}
        if name == "LoRA q,v r=8":
            before = rows[-1]["test"]
            merge_and_unload(model.body.encoder)
            rows[-1]["test_merged"] = accuracy(model, task["test"])
            log(f"{'':24s} merged into W: test {rows[-1]['test_merged']:.1%} (unmerged {before:.1%})")
        del model

    section7 = measure_section7(pretrained, full, adapters, config)
    result = {"config": dataclasses.asdict(config), "sizes": sizes, "majority_test": majority,
              "encoder_parameters": int(encoder_params), "rows": rows, "section7": section7}  # fmt: skip
    (out / "results.json").write_text(json.dumps(result, indent=1))
    return result


def probe_accuracy(head, data):
    x, labels = data
    return float((head(x).data.argmax(axis=-1) == labels).mean())


def train_probe(head, data, config):
    """The head alone on cached embeddings (the frozen encoder never runs again); mean step time."""
    x, labels = data
    optimizer = AdamW(list(head.parameters()), lr=config.lr_head, weight_decay=0.0)
    rng = backend.new_generator(config.seed)
    start = time.perf_counter()
    for _ in range(config.probe_steps):
        rows = backend.asarray(rng.integers(0, len(labels), config.batch_size))
        loss = ops.cross_entropy(head(x[rows]), labels[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - start) / config.probe_steps


def measure_section7(pretrained, full, adapters, config):
    """Spectra of full fine-tuning's ΔW, φ(r=8, r=64), φ(seed, seed), amplification, per layer."""
    xp = backend.module_for("cpu")
    n_layer = sum(1 for n in pretrained if n.endswith("attn.q_proj.weight"))
    r8, big, seed2 = adapters["LoRA q,v r=8"], adapters[f"LoRA q,v r={config.phi_rank}"], adapters["LoRA q,v r=8 seed 2"]
    out = {"spectra": {}, "phi_r8_r64": {}, "phi_seeds": {}, "amplification": {}}
    for proj in ("q_proj", "v_proj"):
        spectra, phi_big, phi_seed, amp = [], [], [], []
        for layer in range(n_layer):
            name = f"blocks.{layer}.attn.{proj}"
            spectra.append(backend.to_numpy(singular_values(full[name + ".weight"] - pretrained[name + ".weight"]))[:16].tolist())
            phi_big.append(backend.to_numpy(subspace_similarity(r8[name][0], big[name][0])).tolist())
            phi_seed.append(backend.to_numpy(subspace_similarity(r8[name][0], seed2[name][0])).tolist())
            a, b, scaling = r8[name]
            delta = scaling * (b @ a)  # (out, in): the adapter's ΔW
            factor = amplification_factor(delta, pretrained[name + ".weight"], 8)
            projected = float(xp.linalg.norm(delta)) / factor  # ‖UᵀWVᵀ‖_F for ΔW's top-8 directions
            random_u = xp.linalg.qr(backend.new_generator(layer).standard_normal((delta.shape[0], 8)))[0]
            random_v = xp.linalg.qr(backend.new_generator(layer + 100).standard_normal((delta.shape[1], 8)))[0]
            amp.append({"factor": factor, "delta_norm": float(xp.linalg.norm(delta)), "projected_norm": projected,
                        "random_projected_norm": float(xp.linalg.norm(random_u.T @ pretrained[name + ".weight"] @ random_v)),
                        "top_projected_norm": float(xp.linalg.norm(singular_values(pretrained[name + ".weight"])[:8]))})  # fmt: skip
        out["spectra"][proj], out["phi_r8_r64"][proj], out["phi_seeds"][proj], out["amplification"][proj] = spectra, phi_big, phi_seed, amp
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m minilora.experiments.minilm_lora", description=__doc__.splitlines()[0])
    for field in dataclasses.fields(PlaysLoraConfig):
        if field.type in ("int", "float", "str", int, float, str):
            kind = {"int": int, "float": float, "str": str}.get(field.type, field.type)
            parser.add_argument("--" + field.name.replace("_", "-"), type=kind, default=field.default)
    args = parser.parse_args(argv)
    config = PlaysLoraConfig(**vars(args))
    result = run(config)
    print(markdown_table(result))
    return 0


def markdown_table(result):
    """The table of docs/pretrained.md from a results dict."""
    lines = ["| method | trainable params | % of encoder | val acc | test acc | step time | stored bytes |", "|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        step = f"{row['step_s'] * 1e3:.0f} ms" if row["step_s"] == row["step_s"] else "–"
        lines.append(f"| {row['name']} | {row['trainable']:,} | {row['percent']:.3f}% | {row['val']:.1%} | {row['test']:.1%} | {step} | {row['stored_bytes']:,} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
