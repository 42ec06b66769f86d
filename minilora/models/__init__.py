"""The models: GPT (article 001), CharRNN (article 000), TextClassifier (articles 002, 003), and the
BertEncoder and SentenceEncoder that pretrained checkpoints load into (docs/pretrained.md).

Every language model and classifier answers ``model(idx, targets=None) -> (logits, loss)``;
the encoders return hidden states (BertEncoder) or sentence embeddings (SentenceEncoder).
"""

from minilora.models.bert import BertConfig, BertEncoder, PoolingConfig, SentenceEncoder
from minilora.models.classifier import ClassifierConfig, TextClassifier
from minilora.models.gpt import GPT, GPTConfig
from minilora.models.rnn import CharRNN, RNNConfig

# Checkpoints name their model by kind; these rebuild it from the saved config.
MODEL_KINDS = {"gpt": (GPT, GPTConfig), "rnn": (CharRNN, RNNConfig), "classifier": (TextClassifier, ClassifierConfig)}


def build_model(kind, config):
    """A freshly initialised model of ``kind`` from a config dict (as saved in a checkpoint)."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; known kinds: {', '.join(MODEL_KINDS)}")
    model_cls, config_cls = MODEL_KINDS[kind]
    return model_cls(config_cls(**config))


__all__ = [
    "GPT", "GPTConfig", "CharRNN", "RNNConfig", "TextClassifier", "ClassifierConfig",
    "BertEncoder", "BertConfig", "SentenceEncoder", "PoolingConfig", "MODEL_KINDS", "build_model",
]  # fmt: skip
