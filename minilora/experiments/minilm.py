"""all-MiniLM-L6-v2 in minilora: the fixed sentences its exactness is checked on, and a
similarity table of paraphrases against unrelated pairs (docs/pretrained.md).

    from minilora.experiments.minilm import check_reference, similarity_table
    model = hub.load_sentence_encoder()
    print(check_reference(model))        # max |minilora - sentence-transformers| over 20 sentences
    print(similarity_table(model.encode(SENTENCES)))
"""

import pathlib

from minilora import backend

# Paraphrases, unrelated pairs, the example of the sentence-transformers documentation,
# and strings that exercise the tokenizer: accents, CJK, emoji, an empty string, and a
# text longer than the 256 tokens the model reads (so truncation is checked too).
SENTENCES = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A woman is playing the violin.",
    "Someone plays a stringed instrument.",
    "The cat sits outside.",
    "The new movie is awesome.",
    "The new film is so great!",
    "Stock markets fell sharply on Monday.",
    "Shares dropped steeply at the start of the week.",
    "Low-rank adaptation trains two small matrices per layer.",
    "Naïve café owners in Zürich prefer crème brûlée.",
    "北京是中国的首都。",
    "I ❤️ NumPy 🚀",
    "",
    "To be, or not to be, that is the question.",
    " ".join(["all work and no play makes jack a dull boy"] * 40),
]

# (first, second, kind): pairs whose cosine similarity the table prints.
PAIRS = [
    (0, 1, "paraphrase"), (3, 4, "paraphrase"), (6, 7, "paraphrase"), (9, 10, "paraphrase"), (11, 12, "paraphrase"),
    (0, 2, "unrelated"), (1, 2, "unrelated"), (3, 5, "unrelated"), (8, 11, "unrelated"), (13, 18, "unrelated"),
]  # fmt: skip

# The similarities the sentence-transformers documentation prints for sentences 0-2
# (sbert.net, "Usage": 0.6660, 0.1046, 0.1411), to compare with.
DOCUMENTED = {(0, 1): 0.6660, (0, 2): 0.1046, (1, 2): 0.1411}

REFERENCE = pathlib.Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "minilm_reference.npz"


def load_reference(path=REFERENCE):
    """(sentences, float32 embeddings (n, 384), versions string) made by sentence-transformers."""
    arrays = backend.load_npz(path)
    return arrays["sentences"].tolist(), arrays["embeddings"], str(arrays["versions"])


def check_reference(model, path=REFERENCE):
    """The largest absolute difference between ``model.encode`` and the reference embeddings."""
    sentences, expected, _ = load_reference(path)
    got = model.encode(sentences)
    return float(abs(got - expected).max())


def similarity_table(embeddings):
    """A markdown table: each pair of PAIRS, its kind and its cosine similarity (and the documented
    value), from ``embeddings = model.encode(SENTENCES)``."""
    rows = ["| first | second | kind | cosine | documented |", "|---|---|---|---|---|"]
    for i, j, kind in PAIRS:
        cosine = float(embeddings[i] @ embeddings[j])
        documented = f"{DOCUMENTED[(i, j)]:.4f}" if (i, j) in DOCUMENTED else ""
        rows.append(f"| {SENTENCES[i]} | {SENTENCES[j]} | {kind} | {cosine:.4f} | {documented} |")
    return "\n".join(rows)
