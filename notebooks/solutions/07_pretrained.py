"""Solutions to the exercises of notebook 07 (the test suite runs this file)."""

import numpy as np
from exercises import check_masked_mean, check_minilm_lora_params, check_wordpiece

# Exercise 1: query and value in each of 6 layers, each with A (8 × 384) and B (384 × 8).
assert check_minilm_lora_params(6 * 2 * 8 * (384 + 384))


# Exercise 2: the sentence embedding before normalisation.
def masked_mean(hidden, mask):
    mask = np.asarray(mask, dtype=float)[..., None]  # (B, T, 1)
    return (hidden * mask).sum(axis=1) / mask.sum(axis=1)


assert check_masked_mean(masked_mean)


# Exercise 3: greedy longest-match-first WordPiece for one word.
def wordpiece(word, vocab):
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                pieces.append(piece)
                start = end
                break
        else:
            return ["[UNK]"]
    return pieces


assert check_wordpiece(wordpiece)
