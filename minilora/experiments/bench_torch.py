"""The PyTorch twins of minilora's GPT and CharRNN, for ``python -m minilora bench`` only.

The same architecture, sizes and optimizer: token and position embeddings,
pre-LayerNorm blocks with separate q/k/v/o projections, causal softmax
attention written out as in minilora, a 4x GELU (tanh) MLP, an untied head,
AdamW. torch is optional: nothing else in minilora imports this module.
"""

import importlib.util
import math


def available():
    return importlib.util.find_spec("torch") is not None


def version():
    import torch

    return torch.__version__


def _modules():
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Attention(nn.Module):
        def __init__(self, C, n_head, T):
            super().__init__()
            self.n_head = n_head
            self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(C, C) for _ in range(4))
            self.register_buffer("future", torch.triu(torch.ones(T, T, dtype=torch.bool), 1))

        def forward(self, x):
            B, T, C = x.shape
            q, k, v = (p(x).view(B, T, self.n_head, -1).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
            scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // self.n_head))
            att = scores.masked_fill(self.future[:T, :T], float("-inf")).softmax(-1)
            return self.o_proj((att @ v).transpose(1, 2).reshape(B, T, C))

    class Block(nn.Module):
        def __init__(self, C, n_head, T):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
            self.attn = Attention(C, n_head, T)
            self.fc_in, self.fc_out = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

        def forward(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.fc_out(F.gelu(self.fc_in(self.ln2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self, vocab, C, n_layer, n_head, T):
            super().__init__()
            self.tok_emb, self.pos_emb = nn.Embedding(vocab, C), nn.Embedding(T, C)
            self.blocks = nn.ModuleList(Block(C, n_head, T) for _ in range(n_layer))
            self.ln_f, self.lm_head = nn.LayerNorm(C), nn.Linear(C, vocab, bias=False)

        def forward(self, idx, targets=None):
            x = self.tok_emb(idx) + self.pos_emb(torch.arange(idx.shape[1]))
            for block in self.blocks:
                x = block(x)
            logits = self.lm_head(self.ln_f(x))
            loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
            return logits, loss

    class LoRALinear(nn.Module):
        def __init__(self, base, r=8, alpha=16):
            super().__init__()
            self.base, self.scaling = base, alpha / r
            self.lora_A = nn.Parameter(torch.randn(r, base.in_features) / math.sqrt(base.in_features))
            self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))

        def forward(self, x):
            return self.base(x) + (x @ self.lora_A.T @ self.lora_B.T) * self.scaling

    class CharRNN(nn.Module):
        def __init__(self, vocab, E, H):
            super().__init__()
            self.tok_emb, self.rnn, self.head = nn.Embedding(vocab, E), nn.RNN(E, H, batch_first=True), nn.Linear(H, vocab)

        def forward(self, idx, targets):
            logits = self.head(self.rnn(self.tok_emb(idx))[0])
            return logits, F.cross_entropy(logits.flatten(0, 1), targets.flatten())

    return torch, GPT, LoRALinear, CharRNN


def _train_step(torch, model, x):
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def train():
        _, loss = model(x, x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return train


def gpt_step(size, mode, vocab):
    torch, GPT, LoRALinear, _ = _modules()
    torch.manual_seed(0)
    model = GPT(vocab, size["n_embd"], size["n_layer"], size["n_head"], size["block_size"])
    x = torch.randint(0, vocab, (size["batch_size"], size["block_size"]))
    if mode == "inference":
        model.eval()

        def infer():
            with torch.no_grad():
                model(x)

        return infer
    if mode == "lora":
        model.requires_grad_(False)
        for block in model.blocks:
            block.attn.q_proj = LoRALinear(block.attn.q_proj)
            block.attn.v_proj = LoRALinear(block.attn.v_proj)
    return _train_step(torch, model, x)


def rnn_step(size, vocab):
    torch, _, _, CharRNN = _modules()
    torch.manual_seed(0)
    model = CharRNN(vocab, size["embed_dim"], size["hidden_size"])
    x = torch.randint(0, vocab, (size["batch_size"], size["block_size"]))
    return _train_step(torch, model, x)
