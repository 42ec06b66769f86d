"""Solutions to the exercises of notebook 02 (the test suite runs this file)."""

import math

import numpy as np
from exercises import check_attention, check_causal_mask, check_gpt_parameter_count

# Exercise 1: V = 65, T = 64, C = 128, 4 blocks.
V, T, C, L = 65, 64, 128, 4
embeddings = V * C + T * C
block = 2 * 2 * C + 4 * (C * C + C) + (C * 4 * C + 4 * C) + (4 * C * C + C)  # two LayerNorms, q k v o, fc_in, fc_out
head = 2 * C + C * V  # ln_f, lm_head (no bias)
assert check_gpt_parameter_count(embeddings + L * block + head)


# Exercise 2: position i sees positions j ≤ i.
def causal_mask(T):
    return np.tril(np.ones((T, T), dtype=bool))


assert check_causal_mask(causal_mask)


# Exercise 3: scores, mask, softmax, values.
def attention(q, k, v):
    scores = q @ k.T / math.sqrt(q.shape[-1])
    scores = np.where(causal_mask(len(q)), scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    return weights / weights.sum(axis=1, keepdims=True) @ v


assert check_attention(attention)
