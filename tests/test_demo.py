"""The main job, `python -m minilora demo --quick`, run as a user runs it."""

import re
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = subprocess.run(
        [sys.executable, "-m", "minilora", "--quick", "--out", str(out)], capture_output=True, text=True, timeout=300
    )
    return result, out


def test_demo_runs_and_prints_one_row_per_method(demo_run):
    result, _ = demo_run
    assert result.returncode == 0, result.stderr
    for method in ("no adaptation", "full fine-tuning", "LoRA r=1 (q, v)", "LoRA r=8 (q, v)", "LoRA r=2 (all linear)", "article 001's split"):
        assert re.search(rf"^\| {re.escape(method)}", result.stdout, re.M), method


def test_demo_checks_the_merge(demo_run):
    result, _ = demo_run
    diff = float(re.search(r"max \|difference\| = ([0-9.e+-]+)", result.stdout).group(1))
    assert diff < 1e-5


def test_demo_saves_its_plots_and_adapters(demo_run):
    result, out = demo_run
    for name in ("loss_curves.png", "delta_w_spectra.png", "subspace_similarity.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG" and str(out / name) in result.stdout
    assert (out / "adapters" / "lora-r-8-q-v" / "adapter_config.json").exists()


def test_demo_table_counts_parameters_honestly(demo_run):
    from minilora.experiments.lora_demo import DemoConfig

    result, _ = demo_run
    row = re.search(r"^\| LoRA r=8 \(q, v\) \| ([0-9,]+) ", result.stdout, re.M).group(1)
    c = DemoConfig.quick()
    assert int(row.replace(",", "")) == c.n_layer * 2 * 8 * (c.n_embd + c.n_embd)


def test_a_quick_run_says_it_is_a_smoke_test_and_prints_no_recovery(demo_run):
    result, _ = demo_run
    assert "Smoke test (--quick)" in result.stdout
    assert "%" not in re.search(r"^\| LoRA r=8 \(q, v\) \|[^|]*\|[^|]*\|([^|]*)\|", result.stdout, re.M).group(1)  # "recovered" is blank
    assert "goal" not in result.stdout and result.stdout.rstrip().splitlines()[-1].startswith("Total time")
    assert "(median, noisy)" in result.stdout


def test_the_finding_is_the_last_line_of_a_full_run():
    from minilora.experiments.lora_demo import DemoConfig, run_demo

    lines = []
    run_demo(DemoConfig.quick(pretrain_iters=5, adapt_iters=3), log=lines.append, progress=False)
    assert lines[-1].lstrip().startswith("Finding: training") and "recovers" in lines[-1]
