"""The backend package: the only door to numpy and cupy."""

import ast
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import minilora as ml
from minilora import backend

PACKAGE = pathlib.Path(ml.__file__).parent
BACKEND = PACKAGE / "backend"
ARRAY_LIBRARIES = {"numpy", "cupy", "cupyx"}


def _imported_modules(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "import_module",
            "__import__",
        ):
            for arg in node.args[:1]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    yield arg.value.split(".")[0]


def test_only_backend_imports_numpy_or_cupy():
    offenders = {
        str(path.relative_to(PACKAGE.parent)): sorted(set(_imported_modules(path)) & ARRAY_LIBRARIES)
        for path in PACKAGE.rglob("*.py")
        if BACKEND not in path.parents
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"only the files of minilora/backend/ may import numpy/cupy: {offenders}"


def test_the_backend_package_is_what_imports_numpy():
    """The rule above exempts a real folder, whose files do import numpy (so the exemption is needed)."""
    files = sorted(BACKEND.glob("*.py"))
    assert BACKEND / "__init__.py" in files
    assert any("numpy" in set(_imported_modules(path)) for path in files)


def test_backend_files_stay_small():
    """Each file of the backend is read in one sitting (CONTRIBUTING.md: backend files under ~250 lines)."""
    lengths = {path.name: len(path.read_text(encoding="utf-8").splitlines()) for path in BACKEND.glob("*.py")}
    assert max(lengths.values()) <= 250, lengths


def test_the_import_check_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom numpy import linalg\nimportlib.import_module('cupy')\n")
    assert {"numpy", "cupy"} <= set(_imported_modules(bad))


def test_importing_minilora_does_not_import_cupy():
    code = "import sys, minilora, minilora.nn.functional; print('cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_importing_the_trainer_does_not_import_matplotlib():
    code = "import sys, minilora, minilora.train, minilora.lora, minilora.lowrank; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_asking_for_missing_cupy_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` fail here
    with pytest.raises(RuntimeError, match=r"pip install 'minilora\[gpu\]'"):
        backend.use("cupy")
    assert backend.current() == "numpy"


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend or device 'torch'"):
        backend.use("torch")


def test_manual_seed_makes_draws_repeatable():
    ml.manual_seed(42)
    a = backend.randn((3,))
    ml.manual_seed(42)
    np.testing.assert_array_equal(a, backend.randn((3,)))
    assert a.dtype == np.float32


def test_rng_state_round_trip():
    state = backend.get_rng_state()
    a = backend.rand((4,))
    backend.set_rng_state(state)
    np.testing.assert_array_equal(a, backend.rand((4,)))


def test_scatter_add_accumulates_repeated_indices():
    target = np.zeros(3)
    backend.scatter_add(target, np.array([0, 2, 0, 0]), np.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(target, [8.0, 0.0, 2.0])


def test_get_array_module_and_to_numpy():
    a = np.ones(2)
    assert backend.get_array_module(a) is np
    assert backend.to_numpy(a) is a
    assert not backend.is_device_array(a)


def test_malloc_is_tuned_on_glibc_and_can_be_turned_off():
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert backend.MALLOC_TUNED
    code = "from minilora import backend; print(backend.MALLOC_TUNED)"
    env = {**__import__("os").environ, "MINILORA_NO_MALLOPT": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"
