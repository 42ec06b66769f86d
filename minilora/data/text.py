"""From text to training batches: loading a corpus, splitting it, sampling batches.

The language-model path follows nanoGPT: the whole corpus is one long array
of token ids, the last part is held out for validation, and each batch is a
set of random windows ``x = data[i : i + T]`` with targets
``y = data[i + 1 : i + T + 1]``, the same window shifted by one token.

The classification path pads sentences to a common length and keeps a mask,
then yields shuffled minibatches.

Random offsets and shuffles come from ``minilora.backend``'s one seeded
generator, so ``minilora.manual_seed(s)`` makes every batch reproducible.
Bad inputs fail early with a message that says what was wrong and what to
do, rather than as an index error deep inside training.
"""

import pathlib

from minilora import backend
from minilora.data import corpora, sentiment

# ----------------------------------------------------------------------------
# Corpora: built-in ones by name, any UTF-8 text file by path.

_BUILTINS = {
    "domain_a": corpora.domain_a,
    "domain_b": corpora.domain_b,
    # The sentiment sentences as plain text, one per line (no labels), e.g.
    # for pretraining a character model before fine-tuning it as a classifier.
    "sentiment": lambda seed: "".join(s + "\n" for s, _ in sentiment.sentiment_corpus(seed=seed)),
}


def builtin_names():
    """The names accepted after ``builtin:`` in ``load_corpus``."""
    return sorted(_BUILTINS)


def load_corpus(spec, seed=0, min_chars=1):
    """The text named by ``spec``: ``"builtin:NAME"``, ``"file:PATH"`` or a plain path.

    Built-in corpora are generated from ``seed``; files are read with
    ``read_text_file`` and ``seed`` is ignored. ``min_chars`` is the length the
    caller needs (``block_size + 1`` for a language model).
    """
    spec = str(spec) if isinstance(spec, pathlib.PurePath) else spec
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"a corpus spec is 'builtin:NAME' or a file path, got {spec!r}")
    if spec.startswith("builtin:"):
        name = spec[len("builtin:"):]
        if name not in _BUILTINS:
            raise ValueError(
                f"unknown built-in corpus {name!r}; available: "
                + ", ".join(f"'builtin:{n}'" for n in builtin_names())
            )
        text = _BUILTINS[name](seed)
        if len(text) < min_chars:
            raise ValueError(f"built-in corpus {name!r} has {len(text)} characters but {min_chars} are needed")
        return text
    path = spec[len("file:"):] if spec.startswith("file:") else spec
    if not pathlib.Path(path).exists() and spec in _BUILTINS:
        raise FileNotFoundError(f"no file {spec!r}; for the built-in corpus write 'builtin:{spec}'")
    return read_text_file(path, min_chars=min_chars)


def read_text_file(path, min_chars=1):
    """The contents of a UTF-8 text file, with Windows line ends made ``"\\n"``.

    Raises FileNotFoundError for a missing path, and ValueError for a
    directory, an empty file, a binary file (a NUL byte), bytes that are not
    UTF-8 (naming the byte offset), or text shorter than ``min_chars``.
    A UTF-8 byte-order mark, if present, is dropped.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"corpus file {str(path)!r} does not exist; check the path, or use a built-in "
                                f"corpus: " + ", ".join(f"'builtin:{n}'" for n in builtin_names()))
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a directory; pass the path of a text file inside it")
    raw = path.read_bytes()
    if not raw:
        raise ValueError(f"corpus file {str(path)!r} is empty; a language model needs text to learn from")
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise ValueError(
            f"corpus file {str(path)!r} looks binary (a NUL byte at byte offset {nul}); "
            f"pass a plain UTF-8 text file"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        start = err.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
        raise ValueError(
            f"corpus file {str(path)!r} is not valid UTF-8 (byte 0x{raw[start]:02x} at byte offset {start}); "
            f"re-save it as UTF-8, e.g. `iconv -f latin1 -t utf-8`"
        ) from None
    text = text.replace("\r\n", "\n")
    if not text.strip():
        raise ValueError(f"corpus file {str(path)!r} holds only whitespace; there is no text to learn from")
    if len(text) < min_chars:
        raise ValueError(
            f"corpus file {str(path)!r} has {len(text)} characters but at least {min_chars} are needed "
            f"(block_size + 1 per window, in both the train and the validation part); use a longer "
            f"file or a smaller block_size"
        )
    return text


# ----------------------------------------------------------------------------
# Language modelling: one long array of ids, split, and sampled in windows.


def _as_ids(data, what):
    """``data`` (a list of ints or an integer array) as a 1-D int64 backend array."""
    if not backend.is_array(data):
        data = backend.asarray(data if len(data) else [], dtype=None if len(data) else backend.int64)
    if data.ndim != 1:
        raise ValueError(f"{what} must be a 1-D sequence of token ids, got shape {tuple(data.shape)}")
    if not backend.is_integer(data.dtype):
        raise ValueError(f"{what} must hold integer token ids, got dtype {data.dtype}")
    return backend.asarray(data, dtype=backend.int64)  # on the selected backend, copied only if needed


def _check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def train_val_split(ids, val_fraction=0.1, block_size=None):
    """``(train, val)``: the first ``1 - val_fraction`` of ``ids`` and the rest.

    The split is contiguous, not shuffled, so no validation window overlaps a
    training window. With ``block_size`` set, both parts must hold at least
    ``block_size + 1`` ids (one window and its shifted target).
    """
    data = _as_ids(ids, "ids")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction!r}")
    n = data.shape[0]
    n_train = int(round(n * (1.0 - val_fraction)))
    need = 1 if block_size is None else block_size + 1
    if n_train < need or n - n_train < need:
        raise ValueError(
            f"{n} tokens split {1 - val_fraction:.0%}/{val_fraction:.0%} gives {n_train} train and "
            f"{n - n_train} validation tokens, but each part needs at least {need}"
            + (f" (block_size + 1 = {need})" if block_size is not None else "")
            + "; use more text, a smaller block_size, or another val_fraction"
        )
    return data[:n_train], data[n_train:]


def get_batch(data, block_size, batch_size, generator=None):
    """``(x, y)``, int64 arrays of shape (batch_size, block_size), y = x shifted by one.

    Window starts are drawn uniformly from every position that leaves room
    for the target, ``0 .. len(data) - block_size - 1``, from minilora's
    seeded generator, or from ``generator`` (``backend.new_generator(seed)``)
    to leave the main stream alone.
    """
    _check_positive_int(block_size, "block_size")
    _check_positive_int(batch_size, "batch_size")
    data = _as_ids(data, "data")
    n = data.shape[0]
    if n < block_size + 1:
        raise ValueError(
            f"data has {n} tokens, too short for block_size {block_size} (a window and its target "
            f"need {block_size + 1}); use a smaller block_size or more text"
        )
    starts = backend.randint(0, n - block_size, (batch_size,), generator)  # (B,)
    offsets = backend.xp.arange(block_size, dtype=backend.int64)          # (T,)
    index = starts[:, None] + offsets[None, :]                            # (B, T)
    return data[index], data[index + 1]


# ----------------------------------------------------------------------------
# Classification: padded sentences and shuffled minibatches.


def encode_sentences(tokenizer, sentences, pad_id=0, max_len=None):
    """``(ids, mask)``: (N, T) int64 ids padded with ``pad_id``, and a (N, T) bool mask.

    ``mask[i, t]`` is True where position t holds a real character of
    sentence i (``mask.sum(1)`` gives the lengths). T is the longest sentence,
    or ``max_len`` if given, in which case longer sentences are cut at the
    right. Beware: in the sentiment corpus the deciding clause is often at the
    end, so cutting it can make a label unrecoverable.
    """
    if isinstance(sentences, str):
        raise TypeError("encode_sentences expects a list of sentences, got a single str")
    encoded = [tokenizer.encode(s) for s in sentences]
    if not encoded:
        raise ValueError("encode_sentences got no sentences")
    if max_len is not None:
        _check_positive_int(max_len, "max_len")
        encoded = [e[:max_len] for e in encoded]
    width = max_len if max_len is not None else max(len(e) for e in encoded)
    if width == 0:
        raise ValueError("every sentence is empty; there is nothing to encode")
    ids = [e + [pad_id] * (width - len(e)) for e in encoded]
    mask = [[True] * len(e) + [False] * (width - len(e)) for e in encoded]
    return backend.asarray(ids, dtype=backend.int64), backend.asarray(mask, dtype=bool)


def iterate_minibatches(x, y, batch_size, shuffle=True, drop_last=False, mask=None):
    """Yield ``(x_batch, y_batch)`` (or ``(x_batch, y_batch, mask_batch)``) over one epoch.

    With ``shuffle`` the order is a permutation drawn from the backend's
    seeded generator, so ``minilora.manual_seed`` fixes it. The last batch
    may be smaller unless ``drop_last``.
    """
    _check_positive_int(batch_size, "batch_size")
    x, y = backend.asarray(x), backend.asarray(y)  # lists, or arrays from another backend
    mask = None if mask is None else backend.asarray(mask)
    n = x.shape[0]
    if y.shape[0] != n or (mask is not None and mask.shape[0] != n):
        lengths = f"x {n}, y {y.shape[0]}" + ("" if mask is None else f", mask {mask.shape[0]}")
        raise ValueError(f"x, y (and mask) need the same number of rows, got {lengths}")
    if shuffle:
        order = backend.asarray(backend.generator().permutation(n))
    else:
        order = backend.xp.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        rows = order[start:start + batch_size]
        if mask is None:
            yield x[rows], y[rows]
        else:
            yield x[rows], y[rows], mask[rows]
