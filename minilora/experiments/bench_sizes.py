"""The benchmark's model sizes and its GPT, shared by the timed steps and the hand-written NumPy reference."""

from minilora import backend
from minilora.models import GPT, GPTConfig

SIZES = {
    "small": dict(n_embd=128, n_layer=4, n_head=4, block_size=64, batch_size=32),
    "medium": dict(n_embd=256, n_layer=6, n_head=4, block_size=128, batch_size=32),
    "quick": dict(n_embd=32, n_layer=1, n_head=2, block_size=16, batch_size=4),  # for tests
}
RNN_SIZE = dict(embed_dim=64, hidden_size=256, block_size=64, batch_size=32)
VOCAB = 65


def bench_gpt(size, seed=0):
    """The benchmark's GPT at ``size`` (a SIZES entry), initialised from ``seed``."""
    backend.manual_seed(seed)
    return GPT(GPTConfig(VOCAB, size["block_size"], size["n_layer"], size["n_head"], size["n_embd"]))
