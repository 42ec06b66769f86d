"""Formats of the wider ecosystem, read and written exactly: safetensors files and GPT-2 checkpoints.

    from minilora import hub
    arrays = hub.safetensors.load("model.safetensors")     # {name: array}
    hub.safetensors.save("copy.safetensors", arrays, metadata={"format": "np"})
    model = hub.load_gpt2("gpt2-dir")                      # config.json + model.safetensors
    hub.save_gpt2(model, "copy-dir")                       # what GPT2LMHeadModel.from_pretrained reads

The hub sits above the models and below the mechanisms: it may use backend,
fileio and models, never lora.
"""

from minilora.hub import safetensors
from minilora.hub.gpt2 import CheckpointError, load_gpt2, save_gpt2

__all__ = ["CheckpointError", "load_gpt2", "safetensors", "save_gpt2"]
