"""docs/migration.md's code runs: the minilora part everywhere, the PyTorch part where
torch, transformers and peft are installed (each block in order, in one namespace)."""

import os
import pathlib
import re

import pytest

GUIDE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "migration.md"
BLOCKS = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)
NEEDS_TORCH = re.compile(r"^(import|from) (torch|transformers|peft)\b", re.M)


def test_the_guide_has_a_minilora_part_and_a_pytorch_part():
    assert len(BLOCKS) >= 3 and not NEEDS_TORCH.search(BLOCKS[0]) and NEEDS_TORCH.search(BLOCKS[1])


def test_the_round_trip_in_the_guide_runs(tmp_path):
    cwd, namespace = os.getcwd(), {"__name__": "__migration_guide__"}
    os.chdir(tmp_path)
    try:
        for index, block in enumerate(BLOCKS):
            if NEEDS_TORCH.search(block):
                for package in ("torch", "transformers", "peft"):
                    pytest.importorskip(package, reason=f"{package} is not installed; the guide's PyTorch part needs it")
            exec(compile(block, f"docs/migration.md, python block {index}", "exec"), namespace)
    finally:
        os.chdir(cwd)
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
