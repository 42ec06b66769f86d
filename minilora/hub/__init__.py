"""Formats of the wider ecosystem, read and written exactly: safetensors files, GPT-2 and BERT checkpoints.

    from minilora import hub
    arrays = hub.safetensors.load("model.safetensors")     # {name: array}
    hub.safetensors.save("copy.safetensors", arrays, metadata={"format": "np"})
    model = hub.load_gpt2("gpt2-dir")                      # config.json + model.safetensors
    hub.save_gpt2(model, "copy-dir")                       # what GPT2LMHeadModel.from_pretrained reads
    encoder = hub.load_bert("path/to/bert")                 # a Hugging Face BERT directory
    model = hub.load_sentence_encoder()                     # all-MiniLM-L6-v2, after `python -m minilora fetch minilm`

The hub sits above the models and below the mechanisms: it may use backend,
fileio and models, never lora.
"""

from minilora.hub import fetch, safetensors
from minilora.hub.bert import load_bert, load_sentence_encoder
from minilora.hub.gpt2 import CheckpointError, load_gpt2, save_gpt2

__all__ = ["CheckpointError", "load_gpt2", "save_gpt2", "safetensors", "fetch", "load_bert", "load_sentence_encoder"]
