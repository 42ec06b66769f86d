"""minilora/data/tokenizer.py: the character and word tokenizers and what they share."""

import json

import numpy as np
import pytest

from minilora import backend
from minilora.data import (
    CharTokenizer,
)

# ----------------------------------------------------------------------------
# CharTokenizer


def test_tokenizer_round_trip_and_sorted_vocabulary():
    text = "Héllo, wörld!\nZ 42"
    tok = CharTokenizer.fit(text)
    assert tok.itos == sorted(set(text))
    assert tok.vocab_size == len(set(text)) == len(tok)
    ids = tok.encode(text)
    assert all(isinstance(i, int) for i in ids) and len(ids) == len(text)
    assert tok.decode(ids) == text
    assert tok.decode(np.asarray(ids, dtype=np.int64)) == text
    assert tok.decode(backend.asarray(ids, dtype=backend.int64)) == text
    assert tok.encode("") == [] and tok.decode([]) == ""


def test_tokenizer_save_load_and_dict_round_trip(tmp_path):
    tok = CharTokenizer.fit("naïve café: 3 €\n")
    path = tmp_path / "tok.json"
    tok.save(path)
    json.loads(path.read_text(encoding="utf-8"))  # plain UTF-8 JSON
    assert CharTokenizer.load(path) == tok
    config = json.loads(json.dumps({"n_layer": 2, "tokenizer": tok.to_dict()}))  # embedded in a config
    assert CharTokenizer.from_dict(config["tokenizer"]) == tok


def test_unseen_character_error_names_it_and_its_position():
    tok = CharTokenizer.fit("abc ")
    with pytest.raises(ValueError) as err:
        tok.encode("ab cé")
    message = str(err.value)
    assert "'é'" in message and "position 4" in message and "fit" in message.lower()


@pytest.mark.parametrize(
    "content, match",
    [("{not json", "not valid JSON"), ('{"chars": ["a"]}', "not a CharTokenizer"), ("[1, 2]", "not a CharTokenizer")],
)
def test_loading_a_malformed_tokenizer_file_says_why(tmp_path, content, match):
    path = tmp_path / "tok.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=match):
        CharTokenizer.load(path)


def test_tokenizer_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError):
        CharTokenizer.load(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="empty"):
        CharTokenizer.fit("")
    with pytest.raises(ValueError, match="more than once"):
        CharTokenizer(["a", "a"])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        CharTokenizer.fit("ab").decode([0, 2])


# ----------------------------------------------------------------------------
# WordTokenizer, and the shared Tokenizer machinery


def test_word_tokenizer_splits_words_and_punctuation():
    from minilora.data import WordTokenizer

    tok = WordTokenizer.fit("It wasn't bad! The food, though, was good.")
    assert tok.split("It wasn't bad!") == ["it", "wasn't", "bad", "!"]
    assert tok.decode(tok.encode("the food was bad!")) == "the food was bad !"
    with pytest.raises(ValueError, match="word 'great' at position 2 is not in this tokenizer's vocabulary"):
        tok.encode("food was great")


def test_word_tokenizer_round_trips_through_json_with_its_options(tmp_path):
    from minilora.data import Tokenizer, WordTokenizer

    tok = WordTokenizer.fit("Good and GOOD", lower=False)
    assert tok.itos == ["GOOD", "Good", "and"]
    path = tmp_path / "words.json"
    tok.save(path)
    assert WordTokenizer.load(path) == tok
    assert Tokenizer.from_dict(tok.to_dict()) == tok  # dispatches on the recorded format
    assert Tokenizer.from_dict(CharTokenizer.fit("ab").to_dict()) == CharTokenizer.fit("ab")
    assert WordTokenizer.fit("Good") != CharTokenizer.fit("Good")
    with pytest.raises(ValueError, match="not a tokenizer description"):
        Tokenizer.from_dict({"format": "something else"})
