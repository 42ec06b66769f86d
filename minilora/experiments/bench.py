"""``python -m minilora bench``: how fast minilora trains, measured against PyTorch in one run.

For each size it times a GPT training step in three modes (full fine-tuning,
LoRA r=8 on q_proj and v_proj with the base frozen, and inference), and a
CharRNN training step. Where torch is installed, the identical PyTorch model
runs in the same process and the two take turns, step for step (A B A B
...), after a warm-up, so a machine that speeds up or slows down affects
both alike; the ratio minilora ÷ torch is what to read. Without torch the
suite still runs and says what it skipped.

It also measures the float32 matmul speed NumPy's BLAS reaches here, and
reports what fraction of it each step achieves (docs/performance.md).
"""

import json
import math
import pathlib
import statistics
import time

from minilora import backend
from minilora.autograd.engine import no_grad
from minilora.experiments.bench_sizes import RNN_SIZE, SIZES, VOCAB, bench_gpt
from minilora.lora import LoraConfig, apply_lora, merge_lora
from minilora.models import CharRNN, RNNConfig
from minilora.optim import AdamW


def blas_peak_gflops(n=1024, repeats=5):
    """The best float32 matmul speed NumPy reaches on an n×n product, in GFLOP/s."""
    a = backend.randn((n, n))
    b = backend.randn((n, n))
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def gpt_flops(size, mode, r=8):
    """FLOPs (2 × multiply-adds) of one step, Eq. C3 in docs/math.md: forward is the
    weights' products plus attention's two, full training adds twice that (the 6N
    rule); a LoRA step (rank r on q_proj and v_proj) forms no frozen weight's gradient."""
    C, L, T, B = size["n_embd"], size["n_layer"], size["block_size"], size["batch_size"]
    weights = L * 12 * C * C + C * VOCAB  # blocks and lm_head; lookups cost no multiplies
    forward = weights + 2 * L * T * C  # per token
    if mode == "inference":
        per_token = forward
    elif mode == "full":
        per_token = 3 * forward
    else:  # lora: the adapters' own products, and a backward with no frozen weight's gradient
        per_token = forward + 4 * L * r * C
        per_token += weights + 4 * L * T * C + 8 * L * r * C - (3 * C * C + T * C + 2 * r * C)
    return 2 * per_token * B * T


# ----------------------------------------------------------------------------
# one step of each system, as a zero-argument callable


def _with_lora(model):
    """The benchmark's adapter: r = 8 on q_proj and v_proj, everything else frozen."""
    return apply_lora(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))


def _train_step(model, x):
    """One AdamW step on ``x`` (its own next-token targets, which is all timing needs)."""
    optimizer = AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def train():
        _, loss = model(x, x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return train


def _inference_step(model, x):
    model.eval()

    def infer():
        with no_grad():
            model(x)

    return infer


def minilora_step(size, mode, seed=0):
    model = bench_gpt(size, seed)
    if mode == "lora":
        _with_lora(model)
    x = backend.randint(0, VOCAB, (size["batch_size"], size["block_size"]))
    return _inference_step(model, x) if mode == "inference" else _train_step(model, x)


def merged_inference_steps(size, seed=0):
    """Inference of a base GPT and of the same GPT with a merged r=8 adapter, to compare."""
    steps = {}
    for name in ("base", "merged"):
        model = bench_gpt(size, seed)
        if name == "merged":
            merge_lora(_with_lora(model))
        x = backend.randint(0, VOCAB, (size["batch_size"], size["block_size"]))
        steps[name] = _inference_step(model, x)
    return steps


def peak_rss_mib(size_name, mode, steps=3):
    """Peak resident memory of a fresh process that takes ``steps`` training steps, in MiB.

    Each mode runs in its own process: a process's peak never goes down, so
    measuring two modes in one process would only ever report the larger. The
    child reads VmHWM from /proc: getrusage's ru_maxrss survives exec on Linux,
    so a child started by this (large) process would report its parent's peak.
    Returns None where /proc is missing (not Linux).
    """
    import subprocess
    import sys

    code = (
        "import pathlib; from minilora.experiments.bench import SIZES, minilora_step\n"
        f"step = minilora_step(SIZES[{size_name!r}], {mode!r})\n"
        f"for _ in range({steps}): step()\n"
        "status = pathlib.Path('/proc/self/status')\n"
        "lines = status.read_text().splitlines() if status.exists() else []\n"
        "print(next((l.split()[1] for l in lines if l.startswith('VmHWM:')), 'none'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    value = out.stdout.split()[-1]
    return None if value == "none" else int(value) / 1024  # VmHWM is in KiB


def minilora_rnn_step(seed=0):
    backend.manual_seed(seed)
    model = CharRNN(RNNConfig(VOCAB, RNN_SIZE["embed_dim"], RNN_SIZE["hidden_size"]))
    x = backend.randint(0, VOCAB, (RNN_SIZE["batch_size"], RNN_SIZE["block_size"]))
    return _train_step(model, x)


# ----------------------------------------------------------------------------
# timing


def interleaved(steps, warmup, repeats):
    """Run each step function in turn, ``warmup`` rounds untimed, then ``repeats`` timed."""
    times = {name: [] for name in steps}
    for round_ in range(warmup + repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def paired_ratio(a, b):
    """The median of a/b taken pair by pair (same round), so the machine's drift cancels."""
    return statistics.median(x / y for x, y in zip(a, b))


def summary(seconds):
    ms = [1000 * s for s in seconds]
    return {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms)}


def run_bench(sizes=("small", "medium"), warmup=3, repeats=10, log=print, bert=False):
    """Time every case; returns a dict with the machine's BLAS peak and one row per case.
    ``bert=True`` adds all-MiniLM-L6-v2's encoder at batch 16, length 64 (experiments/bench_bert.py)."""
    from minilora.experiments import bench_numpy, bench_torch

    torch_ok = bench_torch.available()
    if not torch_ok:
        log("torch is not installed: timing minilora alone (pip install torch for the side-by-side columns)")
    peak = blas_peak_gflops()
    log(f"NumPy BLAS float32 matmul peak here: {peak:.1f} GFLOP/s")
    rows = []
    cases = [(size, mode) for size in sizes for mode in ("full", "lora", "inference")] + [("rnn", "full")]
    for size_name, mode in cases:
        if size_name == "rnn":
            steps = {"minilora": minilora_rnn_step()}
            if torch_ok:
                steps["torch"] = bench_torch.rnn_step(RNN_SIZE, VOCAB)
            flops = None
        else:
            size = SIZES[size_name]
            steps = {"minilora": minilora_step(size, mode)}
            if torch_ok:
                steps["torch"] = bench_torch.gpt_step(size, mode, VOCAB)
            if mode == "full":  # the same step written out by hand: the engine's overhead is the gap
                steps["numpy"] = bench_numpy.numpy_step(size)
            flops = gpt_flops(size, mode)
        times = interleaved(steps, warmup, repeats)
        row = {"size": size_name, "mode": mode, "minilora": summary(times["minilora"])}
        if torch_ok:
            row["torch"] = summary(times["torch"])
            row["ratio"] = paired_ratio(times["minilora"], times["torch"])
        if "numpy" in times:
            row["numpy"] = summary(times["numpy"])
            row["minilora_over_numpy"] = paired_ratio(times["minilora"], times["numpy"])
            if torch_ok:
                row["numpy_over_torch"] = paired_ratio(times["numpy"], times["torch"])
        if flops:
            row["gflops"] = flops / (row["minilora"]["median_ms"] / 1000) / 1e9
            row["fraction_of_peak"] = row["gflops"] / peak
        rows.append(row)
        log(markdown_row(row))
    if bert:
        from minilora.experiments import bench_bert

        for mode in ("full", "lora"):
            times = interleaved(bench_bert.steps(mode), warmup, repeats)
            row = {"size": "MiniLM encoder", "mode": mode, "minilora": summary(times["minilora"])}
            if "torch" in times:
                row["torch"] = summary(times["torch"])
                row["ratio"] = paired_ratio(times["minilora"], times["torch"])
            rows.append(row)
            log(markdown_row(row))
    extras = {}
    for size_name in sizes:
        times = interleaved(merged_inference_steps(SIZES[size_name]), warmup, repeats)
        extras[size_name] = {"merged_over_base_inference": paired_ratio(times["merged"], times["base"])}
        extras[size_name].update({f"peak_rss_mib_{mode}": peak_rss_mib(size_name, mode) for mode in ("full", "lora")})
        log(f"{size_name}: merged/base inference {extras[size_name]['merged_over_base_inference']:.3f}, peak RSS "
            f"full {extras[size_name]['peak_rss_mib_full']:.0f} MiB, LoRA {extras[size_name]['peak_rss_mib_lora']:.0f} MiB")  # fmt: skip
    return {"blas_peak_gflops": peak, "torch": bench_torch.version() if torch_ok else None, "rows": rows, "by_size": extras}


HEADER = "| size | step | minilora ms (min–max) | torch ms (min–max) | minilora ÷ torch | minilora GFLOP/s | % of BLAS peak |\n|---|---|---:|---:|---:|---:|---:|"


def markdown_row(row):
    def cell(s):
        return f"{s['median_ms']:.1f} ({s['min_ms']:.1f}–{s['max_ms']:.1f})"

    torch_cell = cell(row["torch"]) if "torch" in row else "skipped"
    ratio = f"{row['ratio']:.2f}" if "ratio" in row else "–"
    gflops = f"{row['gflops']:.1f}" if "gflops" in row else "–"
    peak = f"{100 * row['fraction_of_peak']:.0f}%" if "fraction_of_peak" in row else "–"
    return f"| {row['size']} | {row['mode']} | {cell(row['minilora'])} | {torch_cell} | {ratio} | {gflops} | {peak} |"


def markdown_table(result):
    lines = [HEADER] + [markdown_row(r) for r in result["rows"]]
    lines += ["", "| size | hand-written NumPy ms (min–max) | minilora ÷ NumPy | NumPy ÷ torch |", "|---|---:|---:|---:|"]
    for r in result["rows"]:
        if "numpy" in r:
            s = r["numpy"]
            over_torch = f"{r['numpy_over_torch']:.2f}" if "numpy_over_torch" in r else "–"
            lines.append(f"| {r['size']} | {s['median_ms']:.1f} ({s['min_ms']:.1f}–{s['max_ms']:.1f}) | {r['minilora_over_numpy']:.2f} | {over_torch} |")
    lines += ["", "| size | merged LoRA ÷ base inference | peak RSS, full fine-tuning | peak RSS, LoRA |", "|---|---:|---:|---:|"]
    for size, e in result["by_size"].items():
        lines.append(f"| {size} | {e['merged_over_base_inference']:.3f} | {e['peak_rss_mib_full']:.0f} MiB | {e['peak_rss_mib_lora']:.0f} MiB |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# The GPU column: training throughput on the CPU and on a device, same model.

GPU_WIDTHS = (256, 512)


def tokens_per_second(size, device, warmup=3, repeats=10):
    """Training tokens per second of the GPT ``size`` on ``device`` ("cpu", "gpu", "fake").

    The model is built on the host from the usual seed and moved. GPU kernels
    run asynchronously, so each timed step ends with a synchronize: without
    it the clock would stop when the kernels are queued, not when they finish.
    """
    model = bench_gpt(size).to(device)
    x = backend.to_device(backend.randint(0, VOCAB, (size["batch_size"], size["block_size"])), device)
    train = _train_step(model, x)
    probe = next(iter(model.parameters())).data

    def step():
        train()
        backend.synchronize(probe)

    seconds = interleaved({"step": step}, warmup, repeats)["step"]
    return size["batch_size"] * size["block_size"] / statistics.median(seconds)


def run_gpu_bench(widths=GPU_WIDTHS, device="gpu", base_size="medium", warmup=3, repeats=10, log=print):
    """Tokens/s at each width on the CPU and on ``device``: the benchmark's GPU column."""
    rows = []
    for width in widths:
        size = dict(SIZES[base_size], n_embd=width)
        row = {"width": width, "cpu_tokens_per_s": tokens_per_second(size, "cpu", warmup, repeats)}
        row["device_tokens_per_s"] = tokens_per_second(size, device, warmup, repeats)
        row["speedup"] = row["device_tokens_per_s"] / row["cpu_tokens_per_s"]
        rows.append(row)
        log(f"width {width}: CPU {row['cpu_tokens_per_s']:.0f} tokens/s, {device} {row['device_tokens_per_s']:.0f} tokens/s")
    return {"device": backend.device_name(device), "base_size": base_size, "rows": rows}


def gpu_markdown_table(gpu):
    lines = [f"| width | CPU tokens/s | {gpu['device']} tokens/s | speed-up |", "|---:|---:|---:|---:|"]
    for r in gpu["rows"]:
        lines.append(f"| {r['width']} | {r['cpu_tokens_per_s']:.0f} | {r['device_tokens_per_s']:.0f} | {r['speedup']:.1f}× |")
    return "\n".join(lines)


def save(result, path):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return path
