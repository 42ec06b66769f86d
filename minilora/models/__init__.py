"""The models: GPT (seed 001), CharRNN (seed 000) and TextClassifier (seeds 002, 003).

Every model answers ``model(idx, targets=None) -> (logits, loss)``.
"""

from minilora.models.classifier import ClassifierConfig, TextClassifier
from minilora.models.gpt import GPT, GPTConfig
from minilora.models.rnn import CharRNN, RNNConfig

__all__ = ["GPT", "GPTConfig", "CharRNN", "RNNConfig", "TextClassifier", "ClassifierConfig"]
