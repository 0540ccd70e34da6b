"""qr_leaderboard.render.formats: every figure of every output is written by these functions,
so their exact strings are pinned here."""

from qr_leaderboard.render.formats import interval, markdown_cell, percent, percent_interval, points, whole


def test_interval():
    assert interval({"estimate": 3.8, "low": 3.524, "high": 4.1149}) == "3.80 [3.52, 4.11]"
    assert interval({"estimate": 1.12345, "low": 0.9, "high": 1.5}, 3) == "1.123 [0.900, 1.500]"
    assert interval({"estimate": 4.0, "low": None, "high": None}) == "4.00 [-]"
    assert interval({"estimate": 4.0, "low": 3.0, "high": None}) == "4.00 [-]"  # one bound is no interval
    assert interval({"estimate": 4.0}) == "4.00 [-]"
    assert interval(None) == "-"


def test_percent():
    assert percent(0.125) == "12.5"
    assert percent(0.5263) == "52.6"
    assert percent(1.0) == "100.0"
    assert percent(0.0) == "0.0"
    assert percent(None) == "-"
    assert percent(0.12345, 2) == "12.35"
    assert percent(0.95, None) == "95"  # thresholds and confidence levels: as few digits as needed
    assert percent(0.025, None) == "2.5"
    assert percent(-0.25, signed=True) == "-25.0"
    assert percent(0.0, signed=True) == "+0.0"


def test_percent_interval_and_points():
    assert percent_interval({"estimate": 0.625, "low": 0.5, "high": 0.75}) == "62.5 [50.0, 75.0]"
    assert percent_interval({"estimate": 0.5, "low": None, "high": None}) == "50.0 [-]"
    assert percent_interval(None) == "-"
    assert points({"estimate": -0.125, "low": -0.25, "high": 0.0}) == "-12.5 [-25.0, +0.0]"
    assert points({"estimate": 0.05, "low": None, "high": None}) == "+5.0 [-]"
    assert points(None) == "-"


def test_whole():
    assert whole(957.2) == "957"
    assert whole(957.5) == "958"
    assert whole(12) == "12"
    assert whole(None) == "-"


def test_markdown_cell_escapes_html_pipes_and_emphasis():
    assert markdown_cell("w4|g128") == "w4\\|g128"
    assert markdown_cell("<b>x</b> & y") == "&lt;b&gt;x&lt;/b&gt; &amp; y"
    assert markdown_cell("a_b *c* `d` [e] #f") == "a\\_b \\*c\\* \\`d\\` \\[e\\] \\#f"
    assert markdown_cell("C:\\path\nnext") == "C:\\\\path next"
    assert markdown_cell('"quoted"') == '"quoted"'  # quotes are safe in a cell
    assert markdown_cell(3.5) == "3.5"
