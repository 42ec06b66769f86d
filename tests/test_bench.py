"""The benchmark suite runs with and without torch, and its numbers are consistent."""

import json
import subprocess
import sys

import pytest

from minilora.experiments import bench, bench_torch


def quick(monkeypatch=None):
    return bench.run_bench(("quick",), warmup=1, repeats=2, log=lambda *_: None)


def test_bench_without_torch_says_what_it_skipped(monkeypatch):
    monkeypatch.setattr(bench_torch, "available", lambda: False)
    said = []
    result = bench.run_bench(("quick",), warmup=1, repeats=2, log=said.append)
    assert result["torch"] is None and any("torch is not installed" in s for s in said)
    assert [(r["size"], r["mode"]) for r in result["rows"]] == [("quick", "full"), ("quick", "lora"), ("quick", "inference"), ("rnn", "full")]
    assert all("torch" not in r and r["minilora"]["min_ms"] <= r["minilora"]["median_ms"] <= r["minilora"]["max_ms"] for r in result["rows"])
    assert "skipped" in bench.markdown_table(result)
    extras = result["by_size"]["quick"]
    assert extras["merged_over_base_inference"] > 0
    assert extras["peak_rss_mib_full"] > 10 and extras["peak_rss_mib_lora"] > 10  # whole processes with numpy, in MiB
    assert "| quick | " in bench.markdown_table(result).split("merged LoRA")[1]


@pytest.mark.slow  # times every case against PyTorch
@pytest.mark.skipif(not bench_torch.available(), reason="torch is optional")
def test_bench_with_torch_reports_ratios():
    result = quick()
    assert result["torch"]
    for row in result["rows"]:
        assert row["ratio"] > 0 and row["torch"]["median_ms"] > 0


def test_flop_count_of_a_training_step_is_three_forwards():
    size = bench.SIZES["small"]
    assert bench.gpt_flops(size, "full") == 3 * bench.gpt_flops(size, "inference")


@pytest.mark.slow  # runs the benchmark command
def test_bench_command_writes_json(tmp_path):
    out = subprocess.run([sys.executable, "-m", "minilora", "bench", "--quick", "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "| quick | full |" in out.stdout
    assert json.loads((tmp_path / "bench.json").read_text())["blas_peak_gflops"] > 0


def test_gpu_column_runs_its_device_path_on_the_fake_device():
    """The GPU column's code (move, step, synchronize) checked on every commit:
    the fake device refuses everything CuPy would."""
    gpu = bench.run_gpu_bench(widths=(16, 32), device="fake", base_size="quick", warmup=1, repeats=2, log=lambda *_: None)
    assert gpu["device"] == "fake" and [r["width"] for r in gpu["rows"]] == [16, 32]
    for r in gpu["rows"]:
        assert r["cpu_tokens_per_s"] > 0 and r["device_tokens_per_s"] > 0
        assert r["speedup"] == pytest.approx(r["device_tokens_per_s"] / r["cpu_tokens_per_s"])
    table = bench.gpu_markdown_table(gpu)
    assert "| 16 |" in table and "fake tokens/s" in table


@pytest.mark.slow  # runs the benchmark command
def test_bench_gpu_flag_without_a_gpu_says_so(tmp_path):
    from minilora import backend

    if backend.gpu_available():
        pytest.skip("a GPU is present here")
    out = subprocess.run([sys.executable, "-m", "minilora", "bench", "--quick", "--gpu", "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "--gpu needs CuPy and an NVIDIA GPU" in out.stderr


def test_lora_flops_follow_eq_c3():
    """C3 for the demo's GPT (docs/math.md): 701,568 and 507,648 multiply-adds per token."""
    size = dict(n_embd=64, n_layer=4, n_head=4, block_size=64, batch_size=1)
    vocab, bench.VOCAB = bench.VOCAB, 70
    try:
        assert bench.gpt_flops(size, "full") == 2 * 701_568 * 64
        assert bench.gpt_flops(size, "lora") == 2 * 507_648 * 64
        assert bench.gpt_flops(size, "inference") == 2 * 233_856 * 64  # the base model, C1 merged
    finally:
        bench.VOCAB = vocab
