"""`python -m minilora compare --quick`, end to end: the table, honest parameter counts, the files, and reproducibility."""

import json
import re
import subprocess
import sys

import pytest

from minilora.experiments.compare import METHODS, OFT_BLOCK, CompareConfig, run_compare
from minilora.train.classify import sentiment_splits

pytestmark = pytest.mark.slow  # one run of the comparison, shared by every test here


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    result = subprocess.run([sys.executable, "-m", "minilora", "compare", "--quick", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout, out, json.loads((out / "compare.json").read_text())


def test_the_table_has_a_row_for_every_method(cli_run):
    stdout, _, saved = cli_run
    for method in METHODS:
        assert re.search(rf"^\| {re.escape(method)} \| ", stdout, re.M), method
    assert saved["table"] in stdout
    for task in ("domain shift", "sentiment"):
        assert [r["method"] for r in saved["tasks"][task]["rows"]] == METHODS


def test_the_plots_and_the_robustness_result_are_saved(cli_run):
    stdout, out, saved = cli_run
    for name in ("compare_methods.png", "compare_robustness.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG" and str(out / name) in stdout
    robustness = saved["robustness"]
    assert robustness["eps"] == [0.0, 0.5] and len(robustness["accuracy"]["adversarial"]["pgd"]) == 1
    assert "| ε / ρ |" in stdout


def _linear_shapes(C, n_layer):
    """(out, in) of every block Linear: q, k, v, o, fc_in, fc_out."""
    return [(C, C)] * 4 * n_layer + [(4 * C, C), (C, 4 * C)] * n_layer


def _gpt_size(V, T, C, n_layer):
    """Embeddings, blocks (two LayerNorms, four C×C projections, the MLP, biases), final LayerNorm, lm_head."""
    block = 2 * 2 * C + 4 * (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C)
    return V * C + T * C + n_layer * block + 2 * C + V * C


def test_parameter_counts_follow_from_the_shapes(cli_run):
    """Every count in the table, recomputed from the model sizes with the formulas of docs/compare.md (Eq. 1 and 8)."""
    _, _, saved = cli_run
    config = CompareConfig.quick()
    tokenizer, train, _ = sentiment_splits(n=config.sentiment.n_sentences, seed=0)
    for task, c in (("domain shift", config.domain), ("sentiment", config.sentiment)):
        result = saved["tasks"][task]
        rows = {r["method"]: r for r in result["rows"]}
        C, L = c.n_embd, c.n_layer
        if task == "domain shift":  # the demo's 70 characters; lm_head has no bias

            def size(width, c=c, L=L):
                return _gpt_size(70, c.block_size, width, L)

            V, head, extra = 70, 70 * C, 0
        else:  # words; the classifier's head (2 classes, with bias) replaces lm_head and trains with every adapter
            V = tokenizer.vocab_size

            def size(width, V=V, L=L):
                return _gpt_size(V, train.x.shape[1], width, L) - V * width + 2 * width + 2

            head = extra = 2 * C + 2
        full = size(C)
        assert rows["full fine-tuning"]["params"] == result["full_size"] == full
        budget = 6 * L * C  # Eq. (1): LoRA r=1 on q, k, v; δ on six Linears; OFT b=4 on four
        assert rows["output layer only"]["params"] == head
        assert rows["LoRA r=1 (q, k, v)"]["params"] == budget + extra
        assert rows["LoRA r=1 (q, k, v, tok_emb)"]["params"] == budget + V + C + extra  # an embedding adapter: r(V + C)
        assert rows["SVDLinear δ (all linear)"]["params"] == budget + extra
        oft = rows[f"OFT b={OFT_BLOCK} (q, k, v, o)"]
        assert oft["params"] == 4 * L * C * OFT_BLOCK + extra and oft["free"] == budget + extra
        k = C // config.compress_divisor
        removed = sum(o * i - k * (o + i) for o, i in _linear_shapes(C, L))
        assert rows["truncated SVD, then fine-tuning"]["params"] == result["full_size"] - removed
        assert rows["magnitude pruning, then fine-tuning"]["params"] == result["full_size"] - removed  # the same stored count
        stored = result["full_size"] - removed
        nearest = min(range(c.n_head, C, c.n_head), key=lambda w: abs(size(w) - stored))  # widths the heads divide
        assert rows["distillation into a student"]["params"] == rows["the student alone"]["params"] == size(nearest)
        assert rows["the student alone"]["detail"] == f"width {nearest}"
        for r in rows.values():
            assert r["percent"] == pytest.approx(100.0 * r["params"] / result["full_size"])


def test_recovery_is_the_share_of_full_fine_tunings_gain(cli_run):
    _, _, saved = cli_run
    rows = {r["method"]: r for r in saved["tasks"]["domain shift"]["rows"]}
    none, full = rows["no adaptation"]["loss_b"], rows["full fine-tuning"]["loss_b"]
    for r in rows.values():
        assert r["recovery"] == pytest.approx((none - r["loss_b"]) / (none - full))  # Eq. (10) in docs/lora.md
    assert rows["full fine-tuning"]["recovery"] == 1.0 and rows["no adaptation"]["recovery"] == 0.0


def test_the_same_seed_gives_the_same_metrics(cli_run, tmp_path):
    _, _, saved = cli_run
    config = CompareConfig.quick(out=str(tmp_path))
    config.run_robustness = False  # minilora/adversarial.py's own tests check that it is deterministic
    again = run_compare(config, log=lambda *_: None, progress=False)

    def metrics(result):
        keep = ("method", "params", "free", "loss_b", "recovery", "accuracy")
        return {task: [{k: r[k] for k in keep if k in r} for r in t["rows"]] for task, t in result["tasks"].items()}

    assert metrics(json.loads(json.dumps(again))) == metrics(saved)
    assert again["robustness"] is None and not (tmp_path / "compare_robustness.png").exists()


def test_the_default_tasks_adapt_the_shipped_base(tmp_path):
    """The default comparison runs on the plays: the shipped base, adapted to the histories and to the planted teacher."""
    from minilora import pretrained
    from minilora.experiments.compare_tasks import ShippedBaseConfig

    assert CompareConfig().tasks == ("histories", "teacher")
    tiny = ShippedBaseConfig(block_size=16, batch_size=2, adapt_iters=2, eval_iters=1)
    config = CompareConfig(out=str(tmp_path), tasks=("teacher",), shipped=tiny, run_robustness=False)
    result = run_compare(config, log=lambda *_: None, progress=False)
    task = result["tasks"]["teacher"]
    rows = {r["method"]: r for r in task["rows"]}
    assert task["full_size"] == pretrained.load("shakespeare")[0].num_parameters()
    assert task["pretrain_loss"] == pretrained.info("shakespeare")["val_loss"]  # nothing pretrained: the recorded loss
    assert rows["no adaptation"]["val_loss"] > 0  # KL to a teacher that differs from the base by ΔW*
    assert rows["truncated SVD, then fine-tuning"]["detail"] == "rank 56"  # width 224 / compress_divisor 4
    assert "| teacher: params | KL to teacher | recovered | s |" in result["table"]


def test_unknown_tasks_are_refused():
    with pytest.raises(ValueError, match=r"unknown compare task\(s\) \['poems'\]; choose from"):
        CompareConfig(tasks=("histories", "poems"))
    from minilora.experiments.compare_tasks import ShippedBaseConfig, ShippedBaseTask

    with pytest.raises(ValueError, match="unknown task 'verse' for the shipped base"):
        ShippedBaseTask("verse", ShippedBaseConfig())
    with pytest.raises(ValueError, match="ShippedBaseConfig.adapt_iters must be an integer >= 1"):
        ShippedBaseConfig(adapt_iters=0)
