"""Settings are checked where they are defined: each config dataclass, each optimiser and
generate() refuse a bad value with a message that names the field and its range, so the
Python API and the command line meet the same checks. Each case replays a probe that
once trained a model to get worse, crashed later with ZeroDivisionError, or sampled garbage."""

import re
import subprocess
import sys

import numpy as np
import pytest

import minilora as ml
from minilora.lora import LoraConfig
from minilora.models import GPT, CharRNN, ClassifierConfig, GPTConfig, RNNConfig
from minilora.optim import SGD, Adam, AdamW
from minilora.train import TrainConfig


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("lr", -3e-3, r"TrainConfig.lr must be a finite number in \[0, inf\), got -0.003"),
        ("grad_clip", -1.0, r"TrainConfig.grad_clip must be a finite number in \[0, inf\)"),
        ("beta1", 1.5, r"TrainConfig.beta1 must be a finite number in \[0, 1\), got 1.5"),
        ("beta2", -1.0, r"TrainConfig.beta2 must be a finite number in \[0, 1\)"),
        ("weight_decay", -1.0, r"TrainConfig.weight_decay must be a finite number in \[0, inf\)"),
        ("warmup_iters", -1, r"TrainConfig.warmup_iters must be an integer >= 0, got -1"),
        ("min_lr", 0.5, r"TrainConfig.min_lr must be a finite number in \[0, 0.001\], got 0.5"),
        ("max_iters", -5, r"TrainConfig.max_iters must be an integer >= 1, got -5"),
        ("eval_interval", -1, r"TrainConfig.eval_interval must be an integer >= 1"),
        ("eval_interval", 0, r"TrainConfig.eval_interval must be an integer >= 1"),
        ("eval_iters", 0, r"TrainConfig.eval_iters must be an integer >= 1"),
        ("block_size", -3, r"TrainConfig.block_size must be an integer >= 1, got -3"),
        ("batch_size", 0, r"TrainConfig.batch_size must be an integer >= 1"),
        ("seed", -1, r"TrainConfig.seed must be an integer >= 0, got -1"),
        ("lr", float("nan"), r"TrainConfig.lr must be a finite number"),
    ],
)
def test_train_config_refuses_each_bad_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})


def test_a_field_of_the_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match=r"TrainConfig.max_iters must be an integer >= 1, got 2.5 \(float\)"):
        TrainConfig(max_iters=2.5)
    with pytest.raises(TypeError, match=r"TrainConfig.lr must be a number in \[0, inf\), got '1e-3' \(str\)"):
        TrainConfig(lr="1e-3")
    with pytest.raises(TypeError, match="GPTConfig.n_layer must be an integer"):
        GPTConfig(vocab_size=5, block_size=4, n_layer=True)


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(n_head=0), r"GPTConfig.n_head must be an integer >= 1, got 0"),
        (dict(n_embd=0), r"GPTConfig.n_embd must be an integer >= 1, got 0"),
        (dict(n_layer=-1), r"GPTConfig.n_layer must be an integer >= 1, got -1"),
        (dict(block_size=-3), r"GPTConfig.block_size must be an integer >= 1"),
        (dict(n_embd=10, n_head=4), r"GPTConfig.n_embd \(10\) must be divisible by n_head \(4\)"),
        (dict(dropout=1.0), r"GPTConfig.dropout must be a finite number in \[0, 1\)"),
    ],
)
def test_gpt_config_refuses_each_bad_field(fields, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**{"vocab_size": 11, "block_size": 8, **fields})


def test_rnn_and_classifier_configs_check_their_fields():
    with pytest.raises(ValueError, match=r"RNNConfig.hidden_size must be an integer >= 1, got 0"):
        RNNConfig(vocab_size=5, hidden_size=0)
    with pytest.raises(ValueError, match=r"RNNConfig.projection must be one of 'none', 'trainable', 'gaussian', 'orthogonal', got 'qr'"):
        RNNConfig(vocab_size=5, projection="qr")
    with pytest.raises(ValueError, match=r"RNNConfig.proj_dim \(4\) must be >= embed_dim \(8\)"):
        RNNConfig(vocab_size=5, embed_dim=8, projection="gaussian", proj_dim=4)
    with pytest.raises(ValueError, match=r"ClassifierConfig.n_classes must be an integer >= 2, got 1"):
        ClassifierConfig(vocab_size=5, block_size=4, n_classes=1)
    with pytest.raises(ValueError, match=r"ClassifierConfig.encoder must be one of 'transformer', 'mean'"):
        ClassifierConfig(vocab_size=5, block_size=4, encoder="lstm")


def test_the_experiment_configs_check_their_fields():
    from minilora.experiments.compare import CompareConfig
    from minilora.experiments.compare_tasks import DomainShiftConfig
    from minilora.experiments.lora_demo import DemoConfig

    with pytest.raises(ValueError, match=r"DemoConfig.seed must be an integer >= 0, got -1"):
        DemoConfig(seed=-1)
    with pytest.raises(ValueError, match=r"DemoConfig.out is an empty string"):
        DemoConfig(out="")
    with pytest.raises(ValueError, match=r"DemoConfig.teacher_strength must be a finite number in \[0, inf\)"):
        DemoConfig(teacher_strength=-1.0)
    with pytest.raises(ValueError, match=r"CompareConfig.seed must be an integer >= 0, got -2"):
        CompareConfig(seed=-2)  # checked before its tasks' configs take it
    with pytest.raises(ValueError, match=r"DomainShiftConfig.seed must be an integer >= 0, got -2"):
        DomainShiftConfig(seed=-2)


@pytest.mark.parametrize(
    "fields, error, message",
    [
        (dict(target_modules=5), TypeError, r"LoraConfig.target_modules must be a list of module names, a regular expression or 'all-linear', got 5"),
        (dict(target_modules=[]), TypeError, r"LoraConfig.target_modules must be a list"),
        (dict(target_modules=["q_proj", 3]), TypeError, r"LoraConfig.target_modules must be a list"),
        (dict(target_modules="q_proj("), ValueError, r"LoraConfig.target_modules 'q_proj\(' is not a valid regular expression"),
        (dict(modules_to_save="head"), TypeError, r"LoraConfig.modules_to_save must be a list of module names"),
        (dict(use_rslora="yes"), ValueError, r"LoraConfig.use_rslora must be one of True, False"),
        (dict(lora_alpha=float("inf")), ValueError, r"LoraConfig.lora_alpha must be a finite number in \(0, inf\)"),
    ],
)
def test_lora_config_refuses_each_bad_field(fields, error, message):
    with pytest.raises(error, match=message):
        LoraConfig(**fields)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: SGD(p, lr=-0.1), r"SGD.lr must be a finite number in \[0, inf\), got -0.1"),
        (lambda p: SGD(p, lr=0.1, momentum=-0.5), r"SGD.momentum must be a finite number in \[0, inf\)"),
        (lambda p: SGD(p, lr=0.1, weight_decay=-1), r"SGD.weight_decay must be a finite number in \[0, inf\)"),
        (lambda p: Adam(p, betas=(1.5, 0.99)), r"Adam.betas\[0\] must be a finite number in \[0, 1\), got 1.5"),
        (lambda p: AdamW(p, betas=(0.9, 1.0)), r"AdamW.betas\[1\] must be a finite number in \[0, 1\), got 1.0"),
        (lambda p: AdamW(p, eps=-1e-8), r"AdamW.eps must be a finite number in \[0, inf\)"),
        (lambda p: AdamW(p, weight_decay=-0.1), r"AdamW.weight_decay must be a finite number in \[0, inf\)"),
        (lambda p: AdamW([{"params": p, "lr": -1.0}]), r"AdamW.lr must be a finite number in \[0, inf\), got -1.0"),
        (lambda p: Adam(p, betas=(0.9,)), r"Adam.betas must be a pair \(beta1, beta2\)"),
    ],
)
def test_optimisers_check_their_hyperparameters(make, message):
    params = [ml.nn.Parameter(np.zeros(3, np.float32))]
    with pytest.raises(ValueError, match=message):
        make(params)


def gpt():
    ml.manual_seed(0)
    return GPT(GPTConfig(vocab_size=7, block_size=8, n_layer=1, n_head=1, n_embd=8))


@pytest.mark.parametrize("model", [gpt, lambda: CharRNN(RNNConfig(vocab_size=7, embed_dim=4, hidden_size=8))])
@pytest.mark.parametrize(
    "options, message",
    [
        (dict(temperature=float("nan")), r"generate.temperature must be a finite number in \[0, inf\), got nan"),
        (dict(temperature=float("inf")), r"generate.temperature must be a finite number"),
        (dict(temperature=-1.0), r"generate.temperature must be a finite number in \[0, inf\), got -1.0"),
        (dict(top_k=0), r"generate.top_k must be an integer in \[1, 7\], got 0"),
        (dict(top_k=8), r"generate.top_k must be an integer in \[1, 7\], got 8"),
    ],
)
def test_generate_refuses_settings_that_sample_garbage(model, options, message):
    with pytest.raises(ValueError, match=message):
        model().generate(np.array([[1, 2]]), 4, **options)


def test_generate_at_the_edges_of_the_allowed_ranges():
    out = gpt().generate(np.array([[1, 2]]), 3, temperature=0.0, top_k=7)
    assert out.shape == (1, 5)
    assert gpt().generate(np.array([[1, 2]]), 0).shape == (1, 2)


@pytest.mark.parametrize("shape", [(), (4,), (2, 3, 4), (0, 4), (2, 0)])
@pytest.mark.parametrize("model", [gpt, lambda: CharRNN(RNNConfig(vocab_size=7, embed_dim=4, hidden_size=8))])
def test_ids_of_the_wrong_shape_are_a_clear_error(model, shape):
    ids = np.ones(shape, dtype=np.int64)
    with pytest.raises(ValueError, match=r"token ids must have shape \(batch >= 1, length >= 1\), got shape " + re.escape(str(shape))):
        model()(ids)


def test_targets_of_the_wrong_shape_are_a_clear_error():
    with pytest.raises(ValueError, match=r"targets must have shape \(batch >= 1, length >= 1\), got shape \(4,\)"):
        gpt()(np.ones((1, 4), np.int64), np.ones(4, np.int64))


def cli(*args):
    return subprocess.run([sys.executable, "-m", "minilora", *args], capture_output=True, text=True, timeout=300)


def test_the_command_line_gets_the_same_checks(tmp_path):
    for flags, message in [
        (["--lr=-3e-3"], "TrainConfig.lr must be a finite number in [0, inf), got -0.003"),
        (["--n-head", "0"], "GPTConfig.n_head must be an integer >= 1, got 0"),
        (["--eval-interval", "0"], "TrainConfig.eval_interval must be an integer >= 1, got 0"),
    ]:
        result = cli("train", "--data", "builtin:domain_a", "--out", str(tmp_path / "run"), *flags)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert message in result.stderr
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_sample_and_eval_refuse_bad_settings(tmp_path):
    from minilora.data import two_domain_corpus
    from minilora.train.lm import train_language_model

    run = tmp_path / "run"
    text = two_domain_corpus(seed=0, n_chars=3_000)[0]
    cfg = TrainConfig(max_iters=1, batch_size=2, block_size=8, eval_interval=1, eval_iters=1, warmup_iters=0)
    train_language_model("gpt", dict(block_size=8, n_layer=1, n_head=1, n_embd=8), text, cfg, out=run, log=lambda *_: None, progress=False)
    result = cli("sample", "--ckpt", str(run), "--temperature", "nan")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "generate.temperature must be a finite number in [0, inf), got nan" in result.stderr and result.stdout == ""
    result = cli("eval", "--ckpt", str(run), "--data", "builtin:domain_a", "--batch-size", "0")
    assert result.returncode == 1 and "--batch-size must be an integer >= 1, got 0" in result.stderr
