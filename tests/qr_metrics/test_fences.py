"""qr_metrics.fences: the one fence parser, on hand-made texts with exact expected blocks."""

from qr_metrics.code_sandbox import extract_code
from qr_metrics.fences import PYTHON_TAGS, Fence, fenced_blocks


def test_blocks_in_order_with_offsets_tags_and_bodies():
    text = "Intro\n```python\nx = 1\n```\nthen\n  ```JSON extra words\n{}\n  ```\n"
    assert fenced_blocks(text) == [
        Fence(start=6, tag="python", body="x = 1\n", closed=True),
        Fence(start=31, tag="json", body="{}\n", closed=True),
    ]
    assert text[31:].startswith("  ```JSON")


def test_untagged_empty_and_tag_characters():
    assert fenced_blocks("```\n\n```") == [Fence(0, "", "\n", True)]
    assert fenced_blocks("```\n```") == [Fence(0, "", "", True)]
    assert fenced_blocks("``` c++\na\n```") == [Fence(0, "c++", "a\n", True)]
    assert fenced_blocks("```C#\na\n```") == [Fence(0, "c#", "a\n", True)]
    assert fenced_blocks('```Python title="x.py"\na\n```') == [Fence(0, "python", "a\n", True)]


def test_a_block_left_open_at_the_end_counts_unclosed():
    assert fenced_blocks("a\n```py\ndef f():\n    return") == [Fence(2, "py", "def f():\n    return", False)]
    assert fenced_blocks("```\n") == [Fence(0, "", "", False)]


def test_what_is_not_a_fence():
    assert fenced_blocks("") == []
    assert fenced_blocks("no fences here") == []
    assert fenced_blocks("use ```x = 1``` inline") == []
    assert fenced_blocks("text ```python\nx\n") == []  # an opening fence is a line of its own
    # a closing fence holds nothing but the backticks: "```text" inside a block is body
    assert fenced_blocks("```\na\n```text\nb\n```") == [Fence(0, "", "a\n```text\nb\n", True)]


def test_line_breaks_other_than_newline():
    assert fenced_blocks("```py\r\nx = 1\r\n```\r\nok") == [Fence(0, "py", "x = 1\r\n", True)]
    # every break str.splitlines knows ends a line, the closing fence's too
    assert fenced_blocks("```py\u2028x = 1\u2028```\u2028after") == [Fence(0, "py", "x = 1\u2028", True)]


def test_python_tags_are_the_union_of_both_former_lists():
    assert PYTHON_TAGS == frozenset({"", "python", "py", "python3", "py3"})


def test_extract_code_ranks_python_then_untagged_then_any_block():
    python_then_untagged = "```python\nf = 1\n```\nOutput:\n```\n1\n```"
    assert extract_code(python_then_untagged) == "f = 1\n"
    untagged_then_text = "```\ng = 2\n```\n```text\n2\n```"
    assert extract_code(untagged_then_text) == "g = 2\n"
    assert extract_code("```text\nonly\n```") == "only\n"
    assert extract_code("```python\r\na = 1\r\nb = 2\r\n```") == "a = 1\nb = 2\n"
