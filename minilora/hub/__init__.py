"""Formats of the wider ecosystem, read and written exactly: safetensors files first.

    from minilora import hub
    arrays = hub.safetensors.load("model.safetensors")     # {name: array}
    hub.safetensors.save("copy.safetensors", arrays, metadata={"format": "np"})

The hub sits above the models and below the mechanisms: it may use backend,
fileio and models, never lora.
"""

from minilora.hub import safetensors

__all__ = ["safetensors"]
