"""The command line, run as a user would run it."""

import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "minilora", *args], capture_output=True, text=True, timeout=120)


def test_tour_runs_and_learns_xor():
    out = run("tour")
    assert out.returncode == 0, out.stderr
    assert "gradcheck: backward() agrees" in out.stdout
    assert "accuracy 100% on XOR" in out.stdout


def test_tour_options():
    out = run("tour", "--steps", "3", "--seed", "1")
    assert out.returncode == 0, out.stderr
    assert "after 3 steps" in out.stdout


def test_help_documents_every_flag():
    out = run("tour", "--help")
    assert out.returncode == 0
    for flag in ("--seed", "--steps", "--lr"):
        assert flag in out.stdout


def test_unknown_command_is_an_error():
    out = run("frobnicate")
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_flags_before_the_command_are_not_overwritten():
    from minilora.cli import build_parser

    args = build_parser().parse_args(["--seed", "3", "--quick", "demo"])
    assert args.seed == 3 and args.quick
    args = build_parser().parse_args(["demo", "--seed", "4"])
    assert args.seed == 4 and not args.quick and args.out == "minilora-demo"


def test_quick_is_refused_by_the_tour_not_ignored():
    out = run("--quick", "tour")
    assert out.returncode == 1 and "--quick shortens the demo, not the tour" in out.stderr
