"""qr_metrics.documents: keys of documents, samples, items and prompts, by hand-made values."""

import hashlib

import numpy as np
import pytest

from qr_metrics.documents import doc_id_key, doc_key, item_indices, item_key, prompt_hash, sample_key


def test_doc_key_is_canonical_json_whatever_the_key_order():
    assert doc_key({"b": 1, "a": "é"}) == '{"a": "é", "b": 1}'
    assert doc_key({"a": "é", "b": 1}) == doc_key({"b": 1, "a": "é"})
    assert doc_key([1, None]) == "[1, null]"
    assert doc_key({"when": object}) == '{"when": "<class \'object\'>"}'  # not JSON: str()


@pytest.mark.parametrize(
    ("doc_id", "key"),
    [(1, "1"), (1.0, "1"), ("1", "1"), ("1.0", "1"), ("1.00", "1"), (-3, "-3"), ("-3.0", "-3"), (0, "0"),
     (2.5, "2.5"), ("2.5", "2.5"), ("012", "012"), ("abc", "abc"), ("", ""), (10**20, "100000000000000000000")],
)
def test_doc_id_key_merges_integer_spellings_only(doc_id, key):
    assert doc_id_key(doc_id) == key


@pytest.mark.parametrize(
    ("doc_id", "message"),
    [(True, "must be a string or a number, got true"), (None, "must be a string or a number, got null"),
     ([1], "must be a string or a number, got [1]"), (float("nan"), "must be a finite number, got nan"),
     (float("inf"), "must be a finite number, got inf")],
)
def test_doc_id_key_refuses_what_is_no_id(doc_id, message):
    with pytest.raises(ValueError) as error:
        doc_id_key(doc_id)
    assert str(error.value) == message


def test_item_key_and_sample_key():
    assert item_key("qr_math", 7.0) == ("qr_math", "7")
    assert sample_key("qr_math", "7", 2) == ("qr_math", "7", 2)
    assert sample_key("qr_math", 7) == ("qr_math", "7", 0)
    assert sample_key("qr_math", 7, np.int64(3)) == ("qr_math", "7", 3)
    assert type(sample_key("qr_math", 7, np.int64(3))[2]) is int
    assert sample_key("t", 1, 1)[:2] == item_key("t", "1.0")


@pytest.mark.parametrize("repeat", [-1, True, 1.0, "0", None])
def test_sample_key_refuses_a_repeat_that_is_no_count(repeat):
    with pytest.raises(ValueError) as error:
        sample_key("t", 1, repeat)
    assert str(error.value) == f"repeat must be an integer >= 0, got {repeat!r}"


def test_sample_key_refuses_a_bad_doc_id():
    with pytest.raises(ValueError, match="^must be a string or a number, got null$"):
        sample_key("t", None, 0)
    with pytest.raises(ValueError, match="^must be a finite number, got nan$"):
        item_key("t", float("nan"))


def test_item_indices_number_items_in_first_seen_order():
    keys = [("b", "2"), ("a", "1"), ("b", "2"), ("c", "0"), ("a", "1")]
    ids = item_indices(keys)
    assert ids.tolist() == [0, 1, 0, 2, 1]
    assert ids.dtype == np.intp
    assert item_indices(key[:2] for key in [("t", "1", 0), ("t", "1", 1), ("t", "0", 0)]).tolist() == [0, 0, 1]
    assert item_indices(np.array([5, 3, 5])).tolist() == [0, 1, 0]
    assert item_indices([]).tolist() == []


def test_prompt_hash_is_sha256_of_the_utf8_prompt():
    assert prompt_hash("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert prompt_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert prompt_hash("é") == hashlib.sha256("é".encode()).hexdigest()
