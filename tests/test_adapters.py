"""minilora/adapters.py and what the adapter methods share: one calling shape, one target
rule, one meaning of merge, one parameter count; and models/common.mean_loss."""

import numpy as np
import pytest

import minilora as ml
from minilora import nn
from minilora.adapters import (
    AdapterLayer,
    adapter_layers,
    count_parameters,
    merge_adapters,
    resolve_config,
    target_names,
    unmerge_adapters,
)
from minilora.lora import LoraConfig, LoRALinear, apply_lora, lora_layers
from minilora.lowrank import SVDConfig, apply_svd_finetuning, svd_layers
from minilora.models.common import mean_loss
from minilora.orthogonal import OFTConfig, apply_oft, oft_layers
from tests.helpers import LORA_IDX, tiny_gpt


@pytest.mark.parametrize(
    "apply, config, layers",
    [
        (apply_lora, LoraConfig(r=2, target_modules=["q_proj"]), lora_layers),
        (apply_oft, OFTConfig(target_modules=["q_proj"], block_size=4), oft_layers),
        (apply_svd_finetuning, SVDConfig(target_modules=["q_proj"], rank=2), svd_layers),
    ],
)
def test_every_apply_takes_a_config_or_its_fields_alike(apply, config, layers):
    by_config, by_fields = apply(tiny_gpt(), config), apply(tiny_gpt(), **config.to_dict())
    assert [n for n, _ in layers(by_config)] == [n for n, _ in layers(by_fields)] == ["blocks.0.attn.q_proj", "blocks.1.attn.q_proj"]
    assert count_parameters(by_config) == count_parameters(by_fields)
    with pytest.raises(TypeError, match="not both"):
        apply(tiny_gpt(), config, target_modules=["v_proj"])
    with pytest.raises(TypeError, match=f"expected an? {type(config).__name__}, got dict"):
        apply(tiny_gpt(), config.to_dict())


def test_resolve_config_builds_checks_and_passes_through():
    config = LoraConfig(r=4)
    assert resolve_config(config, {}, LoraConfig, "f") is config
    assert resolve_config(None, {"r": 3}, LoraConfig, "f").r == 3
    with pytest.raises(ValueError, match="positive integer"):  # the config's own checks run
        resolve_config(None, {"r": 0}, LoraConfig, "f")


def test_target_names_refuses_unsupported_kinds_and_never_picks_an_adapter():
    model = tiny_gpt()
    with pytest.raises(TypeError, match=r"X supports Linear layers only; these targets are not: tok_emb \(Embedding\)"):
        target_names(model, ["tok_emb"], (nn.Linear,), "X")
    apply_lora(model, LoraConfig(r=2, target_modules=["q_proj"]))
    picked = target_names(model, r"blocks\.0\.attn\..*")  # the LoRA layer itself is never a target; its base is
    assert "blocks.0.attn.q_proj" not in picked and "blocks.0.attn.q_proj.base" in picked
    with pytest.raises(ValueError, match="'q_proj' matches no module"):
        target_names(model, ["q_proj"])


def test_count_parameters_is_the_modules_own_count():
    model = apply_lora(tiny_gpt(), LoraConfig(r=2))
    total, trainable, percent = count_parameters(model)
    assert (total, trainable) == (model.num_parameters(), model.num_parameters(trainable_only=True))
    assert trainable == 2 * 2 * 2 * (8 + 8) and percent == pytest.approx(100 * trainable / total)


def test_merge_adapters_is_all_or_nothing_for_every_kind():
    """One refusal (a non-finite OFT rotation) leaves every layer, merged or not, as it was."""
    model = apply_oft(tiny_gpt(), OFTConfig(target_modules=["q_proj", "v_proj"], block_size=4))
    for _, layer in oft_layers(model):
        layer.oft_S.data = np.random.default_rng(0).normal(size=layer.oft_S.shape) * 0.3
    model.blocks[1].attn.v_proj.oft_S.data[0, 0, 1] = np.inf
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    with pytest.raises(ValueError, match="non-finite"):
        merge_adapters(model)
    assert not any(layer.merged for _, layer in adapter_layers(model))
    for n, p in model.named_parameters():
        np.testing.assert_array_equal(p.data, before[n])


def test_one_meaning_of_merge_for_lora_and_oft():
    """Merged forward = unmerged forward; unmerge gives the base weights back, for both kinds."""
    for apply, config in ((apply_lora, LoraConfig(r=2)), (apply_oft, OFTConfig(block_size=4))):
        model = apply(tiny_gpt(), config)
        for p in model.parameters():
            if p.requires_grad:
                p.data = p.data + 0.1
        base = {n: p.data.copy() for n, p in model.named_parameters() if ".base." in n}
        with ml.no_grad():
            unmerged = model(LORA_IDX)[0].data.copy()
            merge_adapters(model)
            assert all(isinstance(m, AdapterLayer) and m.merged for _, m in adapter_layers(model))
            np.testing.assert_allclose(model(LORA_IDX)[0].data, unmerged, atol=1e-10)
        unmerge_adapters(model)
        for n, p in model.named_parameters():
            if n in base:
                np.testing.assert_allclose(p.data, base[n], atol=1e-12)


def test_a_lora_layer_built_directly_is_checked_like_the_config():
    with pytest.raises(ValueError, match="positive integer"):
        LoRALinear(nn.Linear(4, 4), r=0)
    with pytest.raises(ValueError, match=r"lora_dropout must be in \[0, 1\)"):
        LoRALinear(nn.Linear(4, 4), r=2, lora_dropout=1.0)


def test_mean_loss_weights_batches_and_refuses_bad_input():
    model = tiny_gpt()
    rng = np.random.default_rng(0)
    batches = [(x, x) for x in (rng.integers(0, 11, size=(n, 6)) for n in (4, 4, 1))]
    losses = [model(*b)[1].item() for b in batches]
    sizes = [b[0].size for b in batches]
    assert mean_loss(model, batches) == pytest.approx(sum(losses) / 3, rel=1e-12)
    assert mean_loss(model, batches, sizes) == pytest.approx(np.dot(losses, sizes) / sum(sizes), rel=1e-12)
    with pytest.raises(ValueError, match="batches is empty"):
        mean_loss(model, [])
    with pytest.raises(ValueError, match="2 weights for 3 batches"):
        mean_loss(model, batches, [1, 2])
