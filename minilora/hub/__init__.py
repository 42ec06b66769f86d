"""Formats of the wider ecosystem, read and written exactly: safetensors files first.

    from minilora import hub
    arrays = hub.safetensors.load("model.safetensors")     # {name: array}
    hub.safetensors.save("copy.safetensors", arrays, metadata={"format": "np"})
    encoder = hub.load_bert("path/to/bert")                 # a Hugging Face BERT directory
    model = hub.load_sentence_encoder()                     # all-MiniLM-L6-v2, after `python -m minilora fetch minilm`

The hub sits above the models and below the mechanisms: it may use backend,
fileio and models, never lora.
"""

from minilora.hub import fetch, safetensors
from minilora.hub.bert import load_bert, load_sentence_encoder

__all__ = ["safetensors", "fetch", "load_bert", "load_sentence_encoder"]
