"""Model behaviour an external test would check: generation, masking, projection scaling."""

import numpy as np
import pytest

import minilora as ml
from minilora.models import CharRNN, ClassifierConfig, RNNConfig, TextClassifier
from tests.helpers import tiny_gpt


def gpt():
    return tiny_gpt("float32", vocab_size=7, block_size=6, n_layer=1)


@pytest.mark.parametrize("make", [gpt, lambda: CharRNN(RNNConfig(vocab_size=7, embed_dim=4, hidden_size=8))])
def test_generate_is_seeded_and_extends_the_prompt(make):
    model = make()
    prompt = np.array([[1, 2, 3]])
    ml.manual_seed(5)
    a = model.generate(prompt, 10)
    ml.manual_seed(5)
    b = model.generate(prompt, 10)
    assert a.shape == (1, 13) and np.array_equal(a, b) and np.array_equal(a[:, :3], prompt)
    assert model.training  # generate leaves the mode as it found it


def test_generate_returns_a_tensor_for_a_tensor_and_runs_past_block_size():
    out = gpt().generate(ml.Tensor(np.array([[1]]), dtype="int64"), 12)
    assert isinstance(out, ml.Tensor) and out.shape == (1, 13)


def test_temperature_zero_is_greedy_and_top_k_one_too():
    model = gpt()
    greedy = model.generate(np.array([[1, 2]]), 6, temperature=0.0)
    assert np.array_equal(model.generate(np.array([[1, 2]]), 6, top_k=1), greedy)
    idx = np.array([[1, 2]])
    for _ in range(6):  # greedy by hand
        logits, _ = model(idx[:, -6:])
        idx = np.concatenate([idx, logits.data[:, -1].argmax(-1)[:, None]], axis=1)
    assert np.array_equal(greedy, idx)


def test_top_k_only_samples_among_the_k_likeliest():
    from minilora.models.generation import sample_next

    logits = np.log(np.array([[0.1, 0.5, 0.3, 0.1]], np.float32))
    ml.manual_seed(0)
    draws = {int(sample_next(logits, top_k=2)[0, 0]) for _ in range(200)}
    assert draws == {1, 2}
    with pytest.raises(ValueError, match="top_k"):
        sample_next(logits, top_k=0)


def test_generate_rejects_bad_prompts():
    with pytest.raises(ValueError, match="length >= 1"):
        gpt().generate(np.zeros((1, 0), np.int64), 3)
    with pytest.raises(TypeError, match="dtype='int64'"):
        gpt()(ml.Tensor([[1, 2]]))


def test_gaussian_projection_preserves_norms_on_average():
    ml.manual_seed(0)
    model = CharRNN(RNNConfig(vocab_size=5, embed_dim=16, projection="gaussian", proj_dim=400))
    R = model.proj.weight.data
    assert not model.proj.weight.requires_grad
    np.testing.assert_allclose(R.var(), 1 / 400, rtol=0.05)  # entries N(0, 1/D)
    x = np.random.default_rng(0).normal(size=(16, 200))
    ratios = np.linalg.norm(R @ x, axis=0) / np.linalg.norm(x, axis=0)
    assert abs(ratios.mean() - 1) < 0.02


def test_classifier_ignores_padding_and_survives_an_empty_sentence():
    ml.manual_seed(0)
    model = TextClassifier(ClassifierConfig(vocab_size=9, block_size=6, n_layer=1, n_embd=8, n_head=2)).eval()
    idx = np.array([[1, 2, 3, 0, 0, 0], [4, 5, 6, 7, 8, 1]])
    mask = np.array([[True] * 3 + [False] * 3, [True] * 6])
    other_padding = idx.copy()
    other_padding[0, 3:] = [8, 8, 8]
    a, _ = model(idx, mask=mask)
    b, _ = model(other_padding, mask=mask)
    np.testing.assert_array_equal(a.data, b.data)
    empty, loss = model(idx, np.array([0, 1]), mask=np.array([[False] * 6, [True] * 6]))
    assert np.isfinite(empty.data).all() and np.isfinite(loss.item())
