"""The encoder's training step in ``python -m minilora bench``: all-MiniLM-L6-v2's shape
(6 layers, width 384, 12 heads, feed-forward 1536, 30,522 tokens) at batch 16, length 64,
with a mean-pooled two-class head and AdamW, in minilora and, where Transformers is
installed, as ``transformers.BertModel`` in PyTorch. Random weights: the time of a step
does not depend on them, so nothing needs fetching.
"""

import importlib.util

from minilora import backend
from minilora.autograd import ops
from minilora.lora import LoraConfig, apply_lora
from minilora.models.bert import BertConfig, BertEncoder, mean_pool
from minilora.nn.layers import Linear
from minilora.optim import AdamW

BATCH, LENGTH = 16, 64


def available():
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))


def minilora_step(mode, seed=0):
    """One training step of the encoder with a head ("full" or "lora": q, v at r = 8)."""
    backend.manual_seed(seed)
    encoder, head = BertEncoder(BertConfig()), Linear(384, 2)
    if mode == "lora":
        apply_lora(encoder, LoraConfig(r=8, target_modules=["q_proj", "v_proj"]))
    params = [p for p in [*encoder.parameters(), *head.parameters()] if p.requires_grad]
    optimizer = AdamW(params, lr=1e-4)
    ids = backend.randint(0, 30522, (BATCH, LENGTH))
    mask = backend.xp.ones((BATCH, LENGTH), dtype=backend.int64)
    labels = backend.randint(0, 2, (BATCH,))

    def step():
        loss = ops.cross_entropy(head(mean_pool(encoder(ids, mask), mask)), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def torch_step(mode, seed=0):
    """The same step with transformers.BertModel (eager attention), a head and torch's AdamW."""
    import torch
    import transformers

    torch.manual_seed(seed)
    config = transformers.BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
                                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, attn_implementation="eager")  # fmt: skip
    encoder, head = transformers.BertModel(config, add_pooling_layer=False), torch.nn.Linear(384, 2)
    if mode == "lora":
        encoder.requires_grad_(False)
        for layer in encoder.encoder.layer:  # B·A added to q and v, r = 8, as minilora's LoRALinear
            for name in ("query", "value"):
                base = getattr(layer.attention.self, name)
                a = torch.nn.Parameter(torch.randn(8, 384) * 0.01)
                b = torch.nn.Parameter(torch.zeros(384, 8))
                base.register_parameter("lora_A", a)
                base.register_parameter("lora_B", b)
                base.register_forward_hook(lambda m, inputs, out: out + 2.0 * (inputs[0] @ m.lora_A.T @ m.lora_B.T))
    params = [p for p in [*encoder.parameters(), *head.parameters()] if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    ids = torch.randint(0, 30522, (BATCH, LENGTH))
    mask = torch.ones(BATCH, LENGTH, dtype=torch.long)
    labels = torch.randint(0, 2, (BATCH,))

    def step():
        hidden = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        loss = torch.nn.functional.cross_entropy(head(hidden.mean(1)), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def steps(mode):
    """{"minilora": step, "torch": step (where torch and transformers are installed)}."""
    out = {"minilora": minilora_step(mode)}
    if available():
        out["torch"] = torch_step(mode)
    return out
