"""minilora/data/text.py: corpora by name, text files, splits, batches and sentence encoding."""


import numpy as np
import pytest

import minilora as ml
from minilora import backend
from minilora.data import (
    CharTokenizer,
    builtin_names,
    encode_sentences,
    get_batch,
    iterate_minibatches,
    load_corpus,
    read_text_file,
    sentiment_corpus,
    train_val_split,
)

# ----------------------------------------------------------------------------
# load_corpus and text files


def test_load_corpus_builtins_and_files(tmp_path, domains):
    assert {"domain_a", "domain_b"} <= set(builtin_names())
    assert load_corpus("builtin:domain_a") == domains[0]
    assert load_corpus("builtin:domain_b", seed=0) == domains[1]
    assert load_corpus("builtin:domain_a", seed=1) != domains[0]
    sentences = load_corpus("builtin:sentiment").splitlines()
    assert sentences[:3] == [s for s, _ in sentiment_corpus(seed=0)[:3]]
    path = tmp_path / "corpus.txt"
    path.write_text("To be, or not to be.\n", encoding="utf-8")
    assert load_corpus(str(path)) == load_corpus(f"file:{path}") == load_corpus(path) == "To be, or not to be.\n"


def test_unknown_builtin_lists_the_available_names():
    with pytest.raises(ValueError) as err:
        load_corpus("builtin:shakespeare")
    assert "'shakespeare'" in str(err.value)
    for name in builtin_names():
        assert f"builtin:{name}" in str(err.value)


def test_a_bare_builtin_name_hints_at_the_prefix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="builtin:domain_a"):
        load_corpus("domain_a")


def test_read_text_file_normalises_line_ends_and_drops_a_bom(tmp_path):
    path = tmp_path / "windows.txt"
    path.write_bytes(b"\xef\xbb\xbfline one\r\nline tw\xc3\xb6\r\n")
    assert read_text_file(path) == "line one\nline twö\n"


def _write(tmp_path, data):
    path = tmp_path / "corpus.txt"
    path.write_bytes(data)
    return path


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_text_file(tmp_path / "nope.txt")
    with pytest.raises(FileNotFoundError):
        load_corpus(f"file:{tmp_path / 'nope.txt'}")


def test_directory(tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        read_text_file(tmp_path)


def test_empty_and_blank_files(tmp_path):
    with pytest.raises(ValueError, match="is empty"):
        read_text_file(_write(tmp_path, b""))
    with pytest.raises(ValueError, match="only whitespace"):
        read_text_file(_write(tmp_path, b" \n\n\t\n"))


def test_binary_file_with_a_nul_byte(tmp_path):
    with pytest.raises(ValueError, match=r"NUL byte at byte offset 5"):
        read_text_file(_write(tmp_path, b"hello\x00world"))


def test_invalid_utf8_names_the_byte_offset(tmp_path):
    with pytest.raises(ValueError, match=r"not valid UTF-8 \(byte 0xe9 at byte offset 3\)"):
        read_text_file(_write(tmp_path, "caf\u00e9 au lait".encode("latin-1")))


def test_file_too_short_for_the_block_size(tmp_path):
    path = _write(tmp_path, b"short text\n")
    assert read_text_file(path, min_chars=11) == "short text\n"
    with pytest.raises(ValueError, match=r"has 11 characters but at least 65 are needed.*smaller block_size"):
        load_corpus(path, min_chars=65)


# ----------------------------------------------------------------------------
# train_val_split and get_batch


def test_train_val_split_is_contiguous():
    ids = list(range(100))
    train, val = train_val_split(ids, val_fraction=0.1)
    assert train.dtype == np.int64 and val.dtype == np.int64
    np.testing.assert_array_equal(backend.to_numpy(train), np.arange(90))
    np.testing.assert_array_equal(backend.to_numpy(val), np.arange(90, 100))


def test_train_val_split_errors():
    with pytest.raises(ValueError, match=r"each part needs at least 9 \(block_size \+ 1 = 9\)"):
        train_val_split(list(range(50)), val_fraction=0.1, block_size=8)
    train, val = train_val_split(list(range(90)), val_fraction=0.1, block_size=8)  # exactly enough
    assert len(val) == 9
    with pytest.raises(ValueError, match="val_fraction"):
        train_val_split(list(range(100)), val_fraction=1.0)
    with pytest.raises(ValueError, match="1-D"):
        train_val_split([[1, 2], [3, 4]])


def test_get_batch_shapes_dtype_and_shift():
    data = backend.asarray(np.arange(1000) * 7 % 101, dtype=backend.int64)
    x, y = get_batch(data, block_size=16, batch_size=5)
    assert x.shape == y.shape == (5, 16)
    assert x.dtype == y.dtype == np.int64
    host = backend.to_numpy(data)
    for row_x, row_y in zip(backend.to_numpy(x), backend.to_numpy(y)):
        start = next(i for i in range(len(host) - 16) if (host[i : i + 16] == row_x).all())
        np.testing.assert_array_equal(row_y, host[start + 1 : start + 17])  # next-token targets


def test_get_batch_uses_every_window_including_the_last():
    data = list(range(10))
    seen = set()
    for _ in range(200):
        x, _ = get_batch(data, block_size=4, batch_size=8)
        seen.update(int(v) for v in backend.to_numpy(x)[:, 0])
    assert seen == set(range(6))  # starts 0 .. len - block_size - 1
    x, y = get_batch(data[:5], block_size=4, batch_size=2)  # the shortest valid data
    np.testing.assert_array_equal(backend.to_numpy(x), [[0, 1, 2, 3]] * 2)
    np.testing.assert_array_equal(backend.to_numpy(y), [[1, 2, 3, 4]] * 2)


def test_get_batch_is_reproducible_under_manual_seed():
    data = list(range(5000))
    ml.manual_seed(123)
    x1, y1 = get_batch(data, 32, 4)
    ml.manual_seed(123)
    x2, y2 = get_batch(data, 32, 4)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    ml.manual_seed(124)
    x3, _ = get_batch(data, 32, 4)
    assert not np.array_equal(x1, x3)


def test_get_batch_errors():
    with pytest.raises(ValueError, match=r"too short for block_size 10 .* need 11"):
        get_batch(list(range(10)), block_size=10, batch_size=2)
    with pytest.raises(ValueError, match="block_size must be a positive int"):
        get_batch(list(range(10)), block_size=0, batch_size=2)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        get_batch(list(range(10)), block_size=2, batch_size=1.5)


# ----------------------------------------------------------------------------
# encode_sentences and iterate_minibatches


def test_encode_sentences_pads_and_masks():
    sentences = ["good.", "not bad!", "ok"]
    tok = CharTokenizer.fit("".join(sentences))
    ids, mask = encode_sentences(tok, sentences, pad_id=0)
    assert ids.shape == mask.shape == (3, 8)
    assert ids.dtype == np.int64 and mask.dtype == bool
    np.testing.assert_array_equal(backend.to_numpy(mask).sum(axis=1), [5, 8, 2])
    for row, m, s in zip(backend.to_numpy(ids), backend.to_numpy(mask), sentences):
        assert tok.decode(row[m]) == s
        assert (row[~m] == 0).all()
    ids, mask = encode_sentences(tok, sentences, max_len=4)
    assert ids.shape == (3, 4) and tok.decode(backend.to_numpy(ids)[1]) == "not "
    with pytest.raises(ValueError, match="'z'"):
        encode_sentences(tok, ["zzz"])


def test_iterate_minibatches_covers_every_row_once_and_is_seeded():
    x = backend.asarray(np.arange(23)[:, None] * np.ones((1, 3), dtype=np.int64), dtype=backend.int64)
    y = list(range(23))
    ml.manual_seed(5)
    batches = list(iterate_minibatches(x, y, batch_size=5))
    assert [len(b[1]) for b in batches] == [5, 5, 5, 5, 3]
    rows = np.concatenate([backend.to_numpy(yb) for _, yb in batches])
    assert sorted(rows.tolist()) == y and rows.tolist() != y  # a permutation, shuffled
    for xb, yb in batches:
        np.testing.assert_array_equal(backend.to_numpy(xb)[:, 0], backend.to_numpy(yb))  # rows stay paired
    ml.manual_seed(5)
    again = np.concatenate([backend.to_numpy(yb) for _, yb in iterate_minibatches(x, y, batch_size=5)])
    np.testing.assert_array_equal(rows, again)
    in_order = [backend.to_numpy(yb).tolist() for _, yb in iterate_minibatches(x, y, 10, shuffle=False, drop_last=True)]
    assert in_order == [list(range(10)), list(range(10, 20))]


def test_iterate_minibatches_with_mask_and_errors():
    x = backend.asarray(np.zeros((6, 4)), dtype=backend.int64)
    mask = backend.asarray(np.ones((6, 4)), dtype=bool)
    batches = list(iterate_minibatches(x, [0, 1] * 3, 4, mask=mask))
    assert [len(b) for b in batches] == [3, 3] and batches[0][2].shape == (4, 4)
    with pytest.raises(ValueError, match="same number of rows"):
        next(iterate_minibatches(x, [0, 1], 2))
