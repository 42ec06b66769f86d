"""Every notebook runs top to bottom, and is committed with fresh outputs.

The notebooks are where most readers meet minilora, so they are tested like
code: each one is executed in a fresh kernel (on an in-memory copy; the
committed file is never rewritten), and the committed file must carry the
outputs of one clean run, without per-run metadata that would make every
re-run a diff.

Executing needs jupyter (nbclient and ipykernel), which requirements.txt
installs. Where it is missing the execution test is skipped, except under CI,
where a missing kernel is a broken install and fails.
"""

import json
import os
import pathlib
import re
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
TIMEOUT_S = 300  # for a whole notebook, kernel start included

by_name = pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)


def _jupyter():
    """(nbformat, nbclient), or a skip (a failure under CI) if they are not installed."""
    try:
        import nbclient
        import nbformat
    except ImportError as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"executing notebooks needs jupyter ({err}); pip install -r requirements.txt")
    return nbformat, nbclient


def _source(cell):
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no *.ipynb found in {NOTEBOOK_DIR}"


def test_every_notebook_is_listed_in_the_index():
    index = (NOTEBOOK_DIR / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in NOTEBOOKS if p.stem not in index]
    assert not missing, f"notebooks/README.md does not mention {missing}"


@pytest.mark.slow  # executes every notebook in a fresh kernel
@by_name
def test_notebook_runs_top_to_bottom(path):
    nbformat, nbclient = _jupyter()
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    notebook = nbformat.read(path, as_version=4)  # executed in memory only
    deadline = time.monotonic() + TIMEOUT_S
    running = {"index": None}

    def remember_cell(cell, cell_index, **_):
        running["index"] = cell_index

    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        # Each cell gets whatever is left of the notebook's budget.
        timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},  # the kernel's cwd
        on_cell_execute=remember_cell,
    )
    # The checkout's minilora, and a matplotlib backend that never opens a window.
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": pythonpath}

    def where():
        i = running["index"]
        if i is None:
            return "before the first cell"
        return f"in cell {i} (counting all cells from 0):\n{_source(notebook.cells[i])}"

    try:
        client.execute(env=env)
    except CellExecutionError as err:
        # str(err) holds the cell's source and its traceback; drop the terminal colours.
        report = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
        pytest.fail(
            f"{path.name}: cell {running['index']} (counting all cells from 0) raised "
            f"{err.ename}: {err.evalue}\n{report}",
            pytrace=False,
        )
    except CellTimeoutError:
        pytest.fail(f"{path.name} ran past its {TIMEOUT_S} s budget {where()}", pytrace=False)
    except DeadKernelError as err:
        pytest.fail(f"{path.name}: the kernel died ({err}) {where()}", pytrace=False)


@by_name
def test_notebook_is_committed_with_outputs_of_one_clean_run(path):
    """Outputs present, execution counts 1, 2, 3, ... in order, no error outputs, no volatile metadata."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    problems = []
    if "widgets" in notebook.get("metadata", {}):
        problems.append("notebook metadata has 'widgets' state")
    counts = []
    for i, cell in enumerate(notebook["cells"]):
        if "execution" in cell.get("metadata", {}):
            problems.append(f"cell {i} has metadata.execution (timestamps of one run)")
        if cell["cell_type"] != "code" or not _source(cell).strip():
            continue
        outputs = cell.get("outputs", [])
        if not outputs and cell.get("execution_count") is None:
            problems.append(f"cell {i} has no output and no execution count: it was never run")
        for out in outputs:
            if out.get("output_type") == "error":
                problems.append(f"cell {i} has an error output ({out.get('ename')}: {out.get('evalue')})")
        counts.append(cell.get("execution_count"))
    if counts != list(range(1, len(counts) + 1)):
        problems.append(
            f"execution counts are {counts}, not 1..{len(counts)}: the outputs are not from one "
            "run top to bottom (restart the kernel, run all cells, save)"
        )
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)
