"""PEFT adapters: the fused c_attn maps (Eq. 13-15 in docs/lora.md) exact in float64, the
committed PEFT fixture without torch, round trips, refusals by name, and, where peft is
installed, minilora's exports loaded by PeftModel and PEFT's adapters loaded here."""

import json
import pathlib
import shutil

import numpy as np
import pytest

import minilora as ml
from minilora import hub
from minilora.hub import safetensors
from minilora.lora import LoraConfig, LoRALinear, PeftAdapterError, apply_lora, load_peft_adapter, lora_layers, merge_and_unload, merge_lora, save_peft_adapter
from minilora.lora.peft import alpha_for_rank, fuse, pad, split

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
TINY, TINY_PEFT = FIXTURES / "gpt2_tiny", FIXTURES / "gpt2_tiny_peft"


def ids():
    return np.load(TINY / "input_ids.npy", allow_pickle=False)


def adapted(config, seed=0, scale=0.3):
    """The fixture's GPT-2 with minilora LoRA applied and every B (and trained bias) made nonzero."""
    model = apply_lora(hub.load_gpt2(TINY), config)
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data + (scale * rng.standard_normal(p.shape)).astype(np.float32)
    return model


# ----------------------------------------------------------------------------
# Eq. 13-15: exact in float64


def qkv_layers(subset, r=3, C=5, shared=False):
    rng = np.random.default_rng(7)
    layers, A = [], None
    for j in range(3):
        if j not in subset:
            layers.append(None)
            continue
        layer = LoRALinear(ml.nn.Linear(C, C).double(), r=r, lora_alpha=6)
        if shared and A is not None:
            layer.lora_A = A
        layer.lora_A.data = rng.standard_normal((r, C))
        layer.lora_B.data = rng.standard_normal((C, r))
        A = layer.lora_A
        layers.append(layer)
    return layers


@pytest.mark.parametrize("subset", [(0,), (0, 2), (1, 2), (0, 1, 2)])
def test_fuse_stacks_a_and_blocks_b_exactly(subset):
    layers = qkv_layers(subset)
    A, B = fuse(layers)
    assert A.shape == (3 * len(subset), 5) and B.shape == (15, 3 * len(subset))  # rank Σ r_j
    fused = B @ A
    for j in range(3):
        block = fused[5 * j : 5 * (j + 1)]
        want = layers[j].lora_B.data @ layers[j].lora_A.data if j in subset else np.zeros((5, 5))
        assert np.abs(block - want).max() < 1e-13
    assert np.count_nonzero(B) == 5 * 3 * len(subset)  # only the diagonal blocks are filled


def test_split_shares_a_and_fuse_gives_it_back_bit_for_bit():
    rng = np.random.default_rng(1)
    A, B = rng.standard_normal((4, 6)), rng.standard_normal((18, 4))
    pieces = split(A, B)
    assert all(a is A for a, _ in pieces)
    assert np.abs(np.concatenate([b @ a for a, b in pieces]) - B @ A).max() < 1e-13
    shared = qkv_layers((0, 1, 2), r=4, C=6, shared=True)
    for layer, (a, b) in zip(shared, pieces):
        layer.lora_A.data, layer.lora_B.data = a, b
    A2, B2 = fuse(shared)
    assert np.array_equal(A2, A) and np.array_equal(B2, B)  # a shared A is exported once, not stacked


def test_padding_keeps_the_product_and_the_scaling():
    rng = np.random.default_rng(2)
    A, B = rng.standard_normal((2, 6)), rng.standard_normal((5, 2))
    A8, B8 = pad(A, B, 8)
    assert A8.shape == (8, 6) and B8.shape == (5, 8) and np.array_equal(B8 @ A8, B @ A)
    for rslora in (False, True):
        layer = LoRALinear(ml.nn.Linear(6, 5), r=2, lora_alpha=4, use_rslora=rslora)
        alpha = alpha_for_rank(layer, 8)
        rescaled = LoRALinear(ml.nn.Linear(6, 5), r=8, lora_alpha=alpha, use_rslora=rslora)
        assert abs(rescaled.scaling - layer.scaling) <= 1e-15 * layer.scaling
    assert alpha_for_rank(LoRALinear(ml.nn.Linear(6, 5), r=4, lora_alpha=8), 8) == 16  # an int stays an int


# ----------------------------------------------------------------------------
# The committed PEFT fixture: no torch needed


def test_a_peft_adapter_gives_pefts_logits():
    model = load_peft_adapter(hub.load_gpt2(TINY), TINY_PEFT)
    reference = np.load(TINY_PEFT / "logits.npy", allow_pickle=False)
    assert np.abs(model(ids())[0].data - reference).max() < 1e-5
    attn = model.blocks[0].attn
    assert attn.q_proj.lora_A is attn.k_proj.lora_A is attn.v_proj.lora_A  # Eq. 14: one A for c_attn
    assert not any(m.training for m in model.modules())  # eval mode, adapters included, as PEFT loads them
    assert model.num_parameters(trainable_only=True) == 2 * 4 * ((32 + 96) + (32 + 32) + (32 + 128) + (128 + 32))  # PEFT's count
    assert not any(p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)


def test_the_shared_a_gradient_is_the_sum_over_q_k_v():
    model = load_peft_adapter(hub.load_gpt2(TINY), TINY_PEFT).double()
    A = model.blocks[1].attn.q_proj.lora_A
    batch = ids()[:1, :5]
    assert ml.gradcheck(lambda a: model(batch, batch)[1], [A], atol=1e-6)


def test_peft_round_trip_is_bit_for_bit(tmp_path):
    model = load_peft_adapter(hub.load_gpt2(TINY), TINY_PEFT)
    save_peft_adapter(model, tmp_path / "again")
    ours, theirs = safetensors.load(tmp_path / "again" / "adapter_model.safetensors"), safetensors.load(TINY_PEFT / "adapter_model.safetensors")
    assert set(ours) == set(theirs) and all(np.array_equal(ours[k], theirs[k]) for k in theirs)
    config = json.loads((tmp_path / "again" / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"], config["peft_type"], config["fan_in_fan_out"]) == (4, 8, "LORA", True)


CONFIGS = {
    "q, v (minilora's default)": LoraConfig(r=2, lora_alpha=4),
    "one of q, k, v, and the MLP (padding)": LoraConfig(r=3, lora_alpha=5, target_modules=["k_proj", "fc_in"], use_rslora=True),
    "every linear, biases too": LoraConfig(r=2, lora_alpha=4, target_modules="all-linear", bias="all"),
    "one block only, lora_only biases": LoraConfig(r=2, lora_alpha=2, target_modules=[r"blocks.1.attn.v_proj", "blocks.0.mlp.fc_out"], bias="lora_only"),
    "embeddings and the tied head": LoraConfig(r=2, lora_alpha=4, target_modules=["tok_emb", "pos_emb", "lm_head", "q_proj"]),
}


@pytest.mark.parametrize("case", CONFIGS)
def test_minilora_to_peft_to_minilora_keeps_the_function(tmp_path, case):
    model = adapted(CONFIGS[case]).eval()
    logits = model(ids())[0].data
    save_peft_adapter(model, tmp_path / "a")
    back = load_peft_adapter(hub.load_gpt2(TINY), tmp_path / "a").eval()
    assert np.abs(back(ids())[0].data - logits).max() < 1e-5
    save_peft_adapter(back, tmp_path / "b")  # after one trip the export is a fixed point
    first, second = (safetensors.load(tmp_path / d / "adapter_model.safetensors") for d in "ab")
    assert set(first) == set(second) and all(np.array_equal(first[k], second[k]) for k in first)


def test_target_modules_are_short_where_peft_would_match_exactly(tmp_path):
    save_peft_adapter(adapted(CONFIGS["q, v (minilora's default)"]), tmp_path / "a")
    assert json.loads((tmp_path / "a" / "adapter_config.json").read_text())["target_modules"] == ["attn.c_attn"]
    save_peft_adapter(adapted(CONFIGS["one block only, lora_only biases"]), tmp_path / "b")
    targets = json.loads((tmp_path / "b" / "adapter_config.json").read_text())["target_modules"]
    assert targets == ["transformer.h.0.mlp.c_proj", "transformer.h.1.attn.c_attn"]


# ----------------------------------------------------------------------------
# Refusals, each by name, with the model left as it was


def edited_adapter(tmp_path, config=None, weights=None):
    path = pathlib.Path(shutil.copytree(TINY_PEFT, tmp_path / "adapter"))
    if config:
        meta = json.loads((path / "adapter_config.json").read_text())
        meta.update(config)
        (path / "adapter_config.json").write_text(json.dumps(meta))
    if weights:
        arrays = safetensors.load(path / "adapter_model.safetensors")
        weights(arrays)
        safetensors.save(path / "adapter_model.safetensors", arrays)
    return path


A_KEY = "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"
REFUSALS = {
    "DoRA": (dict(config={"use_dora": True}), "use_dora=True .* magnitude"),
    "a DoRA magnitude key": (dict(weights=lambda a: a.update({"base_model.model.transformer.h.0.mlp.c_fc.lora_magnitude_vector": np.ones(128, np.float32)})), "DoRA magnitude"),
    "rank_pattern": (dict(config={"rank_pattern": {"c_fc": 8}}), "rank_pattern"),
    "alpha_pattern": (dict(config={"alpha_pattern": {"c_fc": 2}}), "alpha_pattern"),
    "modules_to_save": (dict(config={"modules_to_save": ["lm_head"]}), "modules_to_save"),
    "another method": (dict(config={"peft_type": "IA3"}), "peft_type='IA3'"),
    "a rewritten base": (dict(config={"init_lora_weights": "pissa"}), "init_lora_weights='pissa'"),
    "LoRA on a layer norm": (dict(weights=lambda a: a.update({"base_model.model.transformer.h.0.ln_1.lora_A.weight": np.ones((4, 32), np.float32), "base_model.model.transformer.h.0.ln_1.lora_B.weight": np.ones((32, 4), np.float32)})), "h.0.ln_1: LoRA on layer norms is not"),  # noqa: E501 (one case per line)
    "several adapters in one file": (
        dict(weights=lambda a: a.update({"base_model.model.transformer.h.0.attn.c_attn.lora_A.other.weight": a[A_KEY]})),
        "lora_A.other.weight is not a LoRA factor",
    ),
    "another model size": (
        dict(weights=lambda a: a.update({A_KEY: np.ones((4, 16), np.float32)})), r"c_attn: lora_A \(4, 16\).* need \(4, 32\)"
    ),
    "a dropout that is no probability": (dict(config={"lora_dropout": 1.5}), r"lora_dropout must be a finite number in \[0, 1\)"),
    "half a pair": (dict(weights=lambda a: a.pop("base_model.model.transformer.h.1.mlp.c_fc.lora_B.weight")), "h.1.mlp.c_fc: lora_B is missing"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_what_minilora_cannot_load_is_refused_by_name(tmp_path, case):
    edit, message = REFUSALS[case]
    path = edited_adapter(tmp_path, **edit)
    model = hub.load_gpt2(TINY)
    before = model.state_dict()
    with pytest.raises(PeftAdapterError, match=message):
        load_peft_adapter(model, path)
    assert not lora_layers(model) and all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())


def test_several_adapters_in_one_directory_are_refused(tmp_path):
    for name in ("one", "two"):
        shutil.copytree(TINY_PEFT, tmp_path / "both" / name)
    with pytest.raises(FileNotFoundError, match="several adapters .one, two."):
        load_peft_adapter(hub.load_gpt2(TINY), tmp_path / "both")


def test_saving_refuses_what_peft_cannot_read(tmp_path):
    with pytest.raises(ValueError, match="no LoRA adapter"):
        save_peft_adapter(hub.load_gpt2(TINY), tmp_path / "a")
    model = adapted(LoraConfig(r=2)).eval()
    merge_lora(model)
    with pytest.raises(ValueError, match="merged"):
        save_peft_adapter(model, tmp_path / "a")
    with pytest.raises(ValueError, match="modules_to_save"):
        save_peft_adapter(adapted(LoraConfig(r=2, modules_to_save=["ln_f"])), tmp_path / "a")
    with pytest.raises(TypeError, match="minilora GPT"):
        save_peft_adapter(ml.nn.Linear(2, 2), tmp_path / "a")
    with pytest.raises(ValueError, match="PiSSA"):
        save_peft_adapter(adapted(LoraConfig(r=2, init_lora_weights="pissa")), tmp_path / "a")
    with pytest.raises(ValueError, match="already has LoRA"):
        load_peft_adapter(adapted(LoraConfig(r=2)), TINY_PEFT)
    assert not (tmp_path / "a").exists()


# ----------------------------------------------------------------------------
# Against PEFT itself, where it is installed


def peft_and_torch():
    torch = pytest.importorskip("torch", reason="torch is not installed; the PEFT cross-check needs it")
    peft = pytest.importorskip("peft", reason="peft is not installed; the cross-check needs it")
    transformers = pytest.importorskip("transformers", reason="transformers is not installed; the cross-check needs it")
    return torch, peft, transformers


def train_a_few_steps(model, steps=5):
    optimizer = ml.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    batch = ids()
    for _ in range(steps):
        optimizer.zero_grad()
        model(batch[:, :-1], batch[:, 1:])[1].backward()
        optimizer.step()
    return model.eval()


@pytest.mark.parametrize("config", [LoraConfig(r=4, lora_alpha=8), LoraConfig(r=2, lora_alpha=3, target_modules="all-linear", bias="all", use_rslora=True), LoraConfig(r=2, lora_alpha=4, target_modules=["k_proj", "fc_out", "tok_emb"])])  # noqa: E501 (one case per line)
def test_peft_loads_a_minilora_adapter_trained_here(tmp_path, config):
    torch, peft, transformers = peft_and_torch()
    model = train_a_few_steps(apply_lora(hub.load_gpt2(TINY), config))
    assert np.abs(model(ids())[0].data - np.load(TINY / "logits.npy")).max() > 1e-2  # the adapter does something
    save_peft_adapter(model, tmp_path / "adapter")
    base = transformers.GPT2LMHeadModel.from_pretrained(TINY)
    theirs = peft.PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    batch = torch.tensor(ids())
    with torch.no_grad():
        assert np.abs(theirs(batch).logits.numpy() - model(ids())[0].data).max() < 1e-5
        merged_theirs = theirs.merge_and_unload()(batch).logits.numpy()
    assert np.abs(merged_theirs - merge_and_unload(model)(ids())[0].data).max() < 1e-5


def test_minilora_loads_a_peft_adapter_made_on_another_model(tmp_path):
    torch, peft, transformers = peft_and_torch()
    torch.manual_seed(3)
    base = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=61, n_positions=20, n_embd=24, n_layer=3, n_head=3, n_inner=40, tie_word_embeddings=False, bos_token_id=0, eos_token_id=0))  # noqa: E501 (one case per line)
    base.save_pretrained(tmp_path / "base")
    config = peft.LoraConfig(r=3, lora_alpha=7, target_modules=["c_attn", "mlp.c_proj", "wte", "lm_head"], bias="all", use_rslora=True, init_lora_weights=False)
    theirs = peft.get_peft_model(base, config)
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            if p.requires_grad and name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    theirs.save_pretrained(tmp_path / "adapter")
    batch = np.array([[1, 7, 3, 60, 2, 2, 9]])
    theirs.eval()
    loss = theirs(torch.tensor(batch), labels=torch.tensor(batch)).loss
    loss.backward()

    ours = load_peft_adapter(hub.load_gpt2(tmp_path / "base"), tmp_path / "adapter")
    assert np.abs(ours(batch)[0].data - theirs(torch.tensor(batch)).logits.detach().numpy()).max() < 1e-5
    ours(batch[:, :-1], batch[:, 1:])[1].backward()
    peft_A = dict(theirs.named_parameters())["base_model.model.transformer.h.2.attn.c_attn.lora_A.default.weight"].grad.numpy()
    assert np.abs(ours.blocks[2].attn.q_proj.lora_A.grad - peft_A).max() < 1e-5 * max(1.0, np.abs(peft_A).max())
    with torch.no_grad():
        merged = theirs.merge_and_unload()(torch.tensor(batch)).logits.numpy()
    assert np.abs(merge_and_unload(ours.eval())(batch)[0].data - merged).max() < 1e-5
