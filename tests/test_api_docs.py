"""docs/api.md names every public name of the package, and its examples run.

* Every name in a module's ``__all__`` (or, for a module without one, every public
  function and class defined in it) appears in backticks in that module's section
  of docs/api.md; so do the public members of Tensor, Module, Function and
  Optimizer, the experiments' entry points and every command of the CLI. Adding a
  public name without documenting it fails here.
* Every fenced ``python`` block of docs/api.md runs, each on its own.
* Every ``#anchor`` that docs/index.md, docs/math.md and docs/api.md link to is a
  heading of the page it points at (tests/test_docs.py checks the files exist).
"""

import importlib
import inspect
import os
import pathlib
import re

import pytest

from minilora import backend

ROOT = pathlib.Path(__file__).resolve().parent.parent
API = ROOT / "docs" / "api.md"

# module -> the module whose section of api.md documents it
MODULES = {
    "minilora": "minilora",
    "minilora.backend": "minilora.backend",
    "minilora.autograd": "minilora.autograd",
    "minilora.nn": "minilora.nn",
    "minilora.nn.functional": "minilora.nn.functional",
    "minilora.nn.init": "minilora.nn.init",
    "minilora.optim": "minilora.optim",
    "minilora.models": "minilora.models",
    "minilora.models.common": "minilora.models",
    "minilora.models.generation": "minilora.models",
    "minilora.models.gpt": "minilora.models",
    "minilora.models.rnn": "minilora.models",
    "minilora.hub": "minilora.hub",
    "minilora.hub.safetensors": "minilora.hub",
    "minilora.hub.gpt2": "minilora.hub",
    "minilora.data": "minilora.data",
    "minilora.train": "minilora.train",
    "minilora.train.checkpoint": "minilora.train",
    "minilora.train.lm": "minilora.train",
    "minilora.train.classify": "minilora.train",
    "minilora.train.student": "minilora.train",
    "minilora.train.plots": "minilora.train",
    "minilora.train.progress": "minilora.train",
    "minilora.matrices": "minilora.matrices",
    "minilora.adapters": "minilora.adapters",
    "minilora.lora": "minilora.lora",
    "minilora.lora.analysis": "minilora.lora",
    "minilora.lora.peft": "minilora.lora",
    "minilora.lowrank": "minilora.lowrank",
    "minilora.orthogonal": "minilora.orthogonal",
    "minilora.adversarial": "minilora.adversarial",
    "minilora.prune": "minilora.prune",
    "minilora.distill": "minilora.distill",
    "minilora.fileio": "minilora.fileio",
    "minilora.pretrained": "minilora.pretrained",
    "minilora.validate": "minilora.validate",
    "minilora.train.rundir": "minilora.train",
}

# classes whose public members are part of the API -> the section that lists them
CLASSES = {
    "minilora.autograd.Tensor": "minilora.autograd",
    "minilora.autograd.Function": "minilora.autograd",
    "minilora.nn.Module": "minilora.nn",
    "minilora.optim.Optimizer": "minilora.optim",
}

# the functions behind the commands, and what the comparison is made of
ENTRY_POINTS = {
    "minilora.experiments.lora_demo": ["DemoConfig", "run_demo", "headline_adapter"],
    "minilora.experiments.demo_tasks": ["teacher_task", "verse_task", "histories_task", "TASKS", "plant_low_rank",
                                        "planted_similarity", "is_verse", "verse_prose_task", "labelled_passages",
                                        "PassageClassifier"],
    "minilora.experiments.bench": ["run_bench", "run_gpu_bench", "gpt_flops"],
    "minilora.experiments.bench_numpy": ["numpy_step"],
    "minilora.experiments.compare": ["CompareConfig", "run_compare"],
    "minilora.experiments.compare_tasks": ["DomainShiftTask", "SentimentTask", "ShippedBaseTask", "ShippedBaseConfig"],
    "minilora.experiments.pretrain": ["pretrain", "export_base", "base_tokenizer", "pretraining_data"],
    "minilora.experiments.robustness": ["train_adversarial", "run_robustness_experiment", "robustness_table", "plot_robustness"],
}


def public_names(module):
    """``__all__``, or the public functions and classes the module itself defines."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [
        name
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(obj) or inspect.isclass(obj))
        and getattr(obj, "__module__", None) == module.__name__
    ]


def sections(text):
    """{module name: the text of its ``## `module` `` section, subsections included}."""
    out = {}
    for chunk in re.split(r"(?m)^(?=## )", text):
        heading = re.match(r"## `([\w.]+)`", chunk)
        if heading:
            out[heading.group(1)] = chunk
        elif chunk.startswith("## "):
            out[chunk.splitlines()[0][3:].strip()] = chunk
    return out


def undocumented(names, section):
    """The names that appear in no inline code span of ``section`` as a whole word."""
    spans = re.findall(r"`([^`\n]+)`", section)
    return [n for n in names if not any(re.search(rf"(?<!\w){re.escape(n)}(?!\w)", s) for s in spans)]


@pytest.fixture(scope="module")
def page():
    return sections(API.read_text())


@pytest.mark.parametrize("module_name", MODULES)
def test_every_public_name_is_documented_in_its_section(page, module_name):
    section = MODULES[module_name]
    assert section in page, f"docs/api.md has no section headed `{section}`"
    names = public_names(importlib.import_module(module_name))
    assert names, f"{module_name} has no public names: is the list in this test stale?"
    missing = undocumented(names, page[section])
    assert not missing, f"public names of {module_name} missing from the `{section}` section of docs/api.md: {missing}"


@pytest.mark.parametrize("class_path", CLASSES)
def test_every_public_member_of_the_core_classes_is_documented(page, class_path):
    module_name, class_name = class_path.rsplit(".", 1)
    cls = getattr(importlib.import_module(module_name), class_name)
    members = [n for n in vars(cls) if not n.startswith("_")]
    missing = undocumented(members, page[CLASSES[class_path]])
    assert not missing, f"public members of {class_name} missing from docs/api.md: {missing}"


def test_every_experiment_entry_point_exists_and_is_documented(page):
    for module_name, names in ENTRY_POINTS.items():
        module = importlib.import_module(module_name)
        gone = [n for n in names if not hasattr(module, n)]
        assert not gone, f"{module_name} no longer has {gone}: update docs/api.md and this test"
        missing = undocumented(names, page["minilora.experiments"])
        assert not missing, f"entry points of {module_name} missing from docs/api.md: {missing}"


def test_every_command_is_documented(page):
    from minilora import cli

    parser = cli.build_parser()
    (subparsers,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    commands = set(subparsers.choices) | {c for c in cli.COMMANDS if c}
    missing = undocumented(sorted(commands), page["The command line"])
    assert not missing, f"commands missing from the command-line section of docs/api.md: {missing}"
    assert "python -m minilora.orthogonal" in page["The command line"]


def test_the_checker_finds_what_is_missing():
    # A checker that cannot fail would make the tests above worthless.
    text = "## `pkg`\n\n| `alpha(x)` | ... | `pkg.beta(1)` |\n\n## `other`\n\n`gamma`\n"
    page = sections(text)
    assert set(page) == {"pkg", "other"}
    assert undocumented(["alpha", "beta", "gamma", "alph"], page["pkg"]) == ["gamma", "alph"]
    assert undocumented(["gamma"], page["other"]) == []


# ----------------------------------------------------------------------------
# The examples run


BLOCKS = re.findall(r"```python\n(.*?)```", API.read_text(), re.S)


def test_there_are_examples():
    assert len(BLOCKS) >= 15


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=lambda i: BLOCKS[i].strip().splitlines()[-1][:40])
def test_python_blocks_run(index, tmp_path):
    """Each block is a whole program: a fresh namespace, a scratch working directory."""
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(BLOCKS[index], f"docs/api.md, python block {index}", "exec"), {"__name__": "__api_example__"})
    finally:
        os.chdir(cwd)
        if backend.current() != "numpy":  # an example that switched the backend must not leak it
            backend.use("numpy")


# ----------------------------------------------------------------------------
# Anchors


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`$*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path):
    found, fence, seen = set(), False, {}
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fence = not fence
        heading = None if fence else re.match(r"#{1,6} (.*)", line)
        if heading:
            base = slug(heading.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


@pytest.mark.parametrize("name", ["index.md", "math.md", "api.md"])
def test_anchors_resolve(name):
    page = ROOT / "docs" / name
    if not page.exists():
        pytest.skip(f"docs/{name} not written yet")
    broken = []
    for link in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if "#" not in link or re.match(r"[a-z]+://", link):
            continue
        file, anchor = link.split("#", 1)
        target = (page.parent / file).resolve() if file else page
        if target.suffix == ".md" and target.exists() and anchor not in anchors(target):
            broken.append(link)
    assert not broken, f"docs/{name} links to headings that do not exist: {broken}"


def test_slugs_follow_github():
    assert slug("§2 Broadcasting (Eq. B1)") == "2-broadcasting-eq-b1"
    assert slug("3 Eckart–Young: how much truncation loses") == "3-eckartyoung-how-much-truncation-loses"
    assert slug("`minilora.nn.functional`") == "minilorannfunctional"
    assert slug('2.1 `"default"`: $A$ Kaiming-uniform, $B = 0$') == "21-default-a-kaiming-uniform-b--0"
