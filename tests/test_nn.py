"""Modules, layers and freezing: registration, names, state_dict, and layer math."""

import numpy as np
import pytest

import minilora as ml
import minilora.nn.functional as F
from minilora import nn
from tests.helpers import t64


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.blocks = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 2, bias=False)])
        self.scale = nn.Parameter(np.ones(2, np.float32))
        self.not_a_param = ml.Tensor(np.ones(2))  # plain tensors are not registered

    def forward(self, x):
        x = self.fc(x)
        for b in self.blocks:
            x = b(x)
        return x * self.scale


def test_registration_and_dotted_names():
    m = Tiny()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["scale", "fc.weight", "fc.bias", "blocks.0.weight", "blocks.0.bias", "blocks.1.weight"]
    assert [n for n, _ in m.named_modules()] == ["", "fc", "blocks", "blocks.0", "blocks.1"]
    assert m.get_submodule("blocks.1") is m.blocks[1]
    with pytest.raises(AttributeError, match="no submodule 'nope'"):
        m.get_submodule("blocks.nope")
    assert m.num_parameters() == 2 + 12 + 4 + 16 + 4 + 8


def test_reassignment_replaces_registration():
    m = Tiny()
    m.fc = None
    assert "fc.weight" not in dict(m.named_parameters())
    m.scale = nn.Parameter(np.zeros(3, np.float32))
    assert dict(m.named_parameters())["scale"].shape == (3,)


def test_shared_parameters_are_listed_once():
    m = Tiny()
    m.blocks.append(m.blocks[0])
    assert len(list(m.parameters())) == 6


def test_forgetting_super_init_is_explained():
    class Broken(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.ones(1, np.float32))

    with pytest.raises(AttributeError, match="super"):
        Broken()


def test_train_eval_reaches_every_module():
    m = Tiny().eval()
    assert not any(mod.training for mod in m.modules())
    m.train()
    assert all(mod.training for mod in m.modules())


def test_evaluating_restores_each_modules_own_mode():
    """A part frozen in eval mode inside a training model (a frozen encoder under a trained head) stays in eval mode."""
    from minilora.nn.module import evaluating

    m = Tiny().train()
    m.fc.eval()
    with evaluating(m):
        assert not any(mod.training for mod in m.modules())
    assert m.training and not m.fc.training


def test_state_dict_round_trip():
    a, b = Tiny(), Tiny()
    x = ml.Tensor(np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32))
    assert not np.allclose(a(x).data, b(x).data)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(x).data, b(x).data)
    sd = a.state_dict()
    sd["fc.weight"][:] = 0.0  # a copy: the model is untouched
    assert not np.all(a.fc.weight.data == 0)


def test_load_state_dict_lists_every_problem_and_loads_nothing():
    m = Tiny()
    before = m.state_dict()
    sd = m.state_dict()
    del sd["fc.bias"]
    sd["extra.weight"] = np.zeros(2)
    sd["blocks.0.weight"] = np.zeros((5, 4))
    sd["scale"] = np.full(2, 9.0)
    with pytest.raises(KeyError) as err:
        m.load_state_dict(sd)
    message = str(err.value)
    assert "missing keys: fc.bias" in message and "unexpected keys: extra.weight" in message
    assert "blocks.0.weight: checkpoint (5, 4) vs model (4, 4)" in message
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])  # nothing was loaded


def test_load_state_dict_non_strict_reports_keys():
    m = Tiny()
    sd = m.state_dict()
    del sd["fc.bias"]
    sd["extra"] = np.zeros(1)
    result = m.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["fc.bias"] and result.unexpected_keys == ["extra"]


def test_freeze_and_unfreeze_by_pattern():
    m = Tiny()
    assert nn.freeze(m) == [n for n, _ in m.named_parameters()]
    assert nn.unfreeze(m, ["blocks.*.weight"]) == ["blocks.0.weight", "blocks.1.weight"]
    assert [n for n, p in m.named_parameters() if p.requires_grad] == ["blocks.0.weight", "blocks.1.weight"]
    with pytest.raises(ValueError, match=r"'attn\.\*' matches no parameter; the parameters are: scale, fc.weight"):
        nn.freeze(m, "attn.*")


def test_linear_matches_its_formula_and_pytorch_init_bound():
    ml.manual_seed(0)
    layer = nn.Linear(400, 300)
    bound = 1 / np.sqrt(400)
    assert layer.weight.shape == (300, 400)
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.weight.data).max() > 0.95 * bound
    x = np.random.default_rng(1).normal(size=(2, 3, 400)).astype(np.float32)
    np.testing.assert_allclose(layer(ml.Tensor(x)).data, x @ layer.weight.data.T + layer.bias.data, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"has 5 features, but the weight \(300, 400\) expects 400"):
        layer(ml.Tensor(np.ones((2, 5))))


def test_layer_norm_module():
    ln = nn.LayerNorm(6)
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(4, 6)).astype(np.float32)
    y = ln(ml.Tensor(x)).data
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(-1), 1, rtol=1e-3)


def test_dropout_module_follows_train_and_eval():
    d = nn.Dropout(0.5)
    x = ml.Tensor(np.ones((50, 50), np.float32))
    assert (d(x).data == 0).any()
    d.eval()
    assert d(x) is x


def test_rnn_matches_a_step_by_step_loop():
    rnn = nn.RNN(3, 5).double()
    x = np.random.default_rng(0).normal(size=(2, 7, 3))
    h0 = np.random.default_rng(1).normal(size=(2, 5))
    out, last = rnn(ml.Tensor(x), ml.Tensor(h0))
    h = h0
    W_ih, W_hh, b_ih, b_hh = (p.data for p in (rnn.weight_ih, rnn.weight_hh, rnn.bias_ih, rnn.bias_hh))
    for t in range(7):
        h = np.tanh(x[:, t] @ W_ih.T + b_ih + h @ W_hh.T + b_hh)
        np.testing.assert_allclose(out.data[:, t], h, rtol=1e-12)
    np.testing.assert_allclose(last.data, h, rtol=1e-12)


def test_attention_matches_the_equation_head_by_head():
    ml.manual_seed(0)
    attn = nn.CausalSelfAttention(n_embd=8, n_head=2, block_size=6).double()
    x = np.random.default_rng(0).normal(size=(2, 5, 8))
    out = attn(ml.Tensor(x)).data

    def proj(layer, v):
        return v @ layer.weight.data.T + layer.bias.data

    q, k, v = (proj(attn.q_proj, x), proj(attn.k_proj, x), proj(attn.v_proj, x))
    heads = []
    for h in range(2):
        sl = slice(4 * h, 4 * h + 4)
        scores = q[:, :, sl] @ k[:, :, sl].transpose(0, 2, 1) / np.sqrt(4)
        scores = np.where(np.triu(np.ones((5, 5), bool), 1), -np.inf, scores)
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        heads.append(weights @ v[:, :, sl])
    expected = proj(attn.o_proj, np.concatenate(heads, axis=-1))
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)


def test_attention_is_causal():
    """Changing a later token never changes an earlier position's output."""
    ml.manual_seed(0)
    attn = nn.CausalSelfAttention(n_embd=8, n_head=2, block_size=6).double()
    x = np.random.default_rng(0).normal(size=(1, 6, 8))
    y = x.copy()
    y[0, 4:] += 1.0
    np.testing.assert_allclose(attn(ml.Tensor(x)).data[0, :4], attn(ml.Tensor(y)).data[0, :4], rtol=1e-12)


def test_attention_gradcheck():
    ml.manual_seed(0)
    attn = nn.CausalSelfAttention(n_embd=4, n_head=2, block_size=3).double()
    assert ml.gradcheck(lambda x: attn(x), [t64((2, 3, 4))])
    assert ml.gradcheck(lambda w: F.linear(t64((2, 3, 4), requires_grad=False), w), [attn.q_proj.weight])


def test_attention_width_must_split_into_heads():
    with pytest.raises(ValueError, match="divisible"):
        nn.CausalSelfAttention(n_embd=10, n_head=4, block_size=4)


def test_module_repr_reads_like_pytorch():
    text = repr(Tiny())
    assert "(fc): Linear(in_features=3, out_features=4, bias=True)" in text
    assert "(1): Linear(in_features=4, out_features=2, bias=False)" in text


def test_sequential():
    seq = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    assert seq(ml.Tensor(np.ones((2, 3)))).shape == (2, 1)
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_attention_weight_gradients_pass_gradcheck():
    ml.manual_seed(0)
    attn = nn.CausalSelfAttention(n_embd=4, n_head=2, block_size=3).double()
    x = t64((2, 3, 4), requires_grad=False)
    params = [attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.bias, attn.o_proj.weight]
    assert ml.gradcheck(lambda *ps: attn(x), params)


def test_padding_rows_never_produce_nan():
    """A row of padding (an empty sentence, or left padding) still attends to itself."""
    ml.manual_seed(0)
    attn = nn.CausalSelfAttention(n_embd=8, n_head=2, block_size=5)
    x = ml.Tensor(np.random.default_rng(0).normal(size=(2, 5, 8)).astype(np.float32))
    padding = np.array([[True] * 5, [True, True, False, False, False]])  # all padding; left padding
    out = attn(x, key_padding_mask=padding)
    assert np.isfinite(out.data).all()


def test_layer_norm_takes_a_tuple_shape():
    assert nn.LayerNorm((3, 4))(ml.Tensor(np.ones((2, 3, 4)))).shape == (2, 3, 4)


def test_attention_softmax_equals_its_composition():
    """The fused op computes softmax(scale · x) with masked positions at -inf (Eq. N6)."""
    x = t64((2, 3, 5, 5), seed=4)
    mask = np.triu(np.ones((5, 5), bool), 1)
    fused = F.attention_softmax(x, mask, scale=0.3)
    composed = F.softmax(F.masked_fill(x * 0.3, mask, float("-inf")), dim=-1)
    np.testing.assert_allclose(fused.data, composed.data, rtol=1e-13, atol=1e-15)
    g = np.random.default_rng(0).normal(size=x.shape)
    fused.backward(g)
    fused_grad, x.grad = x.grad, None
    composed.backward(g)
    np.testing.assert_allclose(fused_grad, x.grad, rtol=1e-12, atol=1e-14)
    assert (fused.data[..., mask] == 0).all()


def test_attention_softmax_wants_a_boolean_mask():
    with pytest.raises(TypeError, match="mask must be boolean"):
        F.attention_softmax(t64((4, 4)), np.triu(np.ones((4, 4)), 1))


def test_set_submodule_replaces_an_existing_layer_and_refuses_a_new_path():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    new = nn.Linear(4, 2, bias=False)
    model.set_submodule("1", new)
    assert model.get_submodule("1") is new and list(model.parameters())[-1] is new.weight
    with pytest.raises(AttributeError, match="no submodule '2'"):
        model.set_submodule("2", nn.Linear(2, 2))


def test_linear_from_weights_wraps_what_it_is_given_and_draws_nothing():
    w, b = np.arange(6.0).reshape(2, 3), np.ones(2)
    ml.manual_seed(3)
    layer = nn.Linear.from_weights(w, b)
    after = ml.backend.randn((2,))
    ml.manual_seed(3)
    assert np.array_equal(after, ml.backend.randn((2,)))  # the seeded stream was left where it was
    assert (layer.in_features, layer.out_features) == (3, 2) and layer.weight.requires_grad
    np.testing.assert_allclose(layer(ml.Tensor(np.eye(3))).data, w.T + b)
    kept = nn.Parameter(w)
    assert nn.Linear.from_weights(kept).weight is kept and nn.Linear.from_weights(kept).bias is None
