"""CSV formula injection: string cells a spreadsheet would run as a formula are neutralised
(OWASP: prefix a single quote to cells starting with =, +, -, @, tab, CR); numbers, negative
ones included, stay numbers (issue 13: tensor names come from the file)."""

from __future__ import annotations

import csv
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flagalign.cli import main
from flagalign.models.synthetic import write_safetensors

DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def _cells(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_evil_tensor_names_are_neutralised_in_pairs_csv(tmp_path):
    rng = np.random.default_rng(0)
    model = write_safetensors(tmp_path / "evil.safetensors", {
        '=HYPERLINK("http://x","y").0.weight': rng.standard_normal((32, 16)),
        "@SUM(1+1)*cmd.1.weight": rng.standard_normal((8, 32)),
    })
    out = tmp_path / "out"
    assert main(["analyze", model, "--out", str(out), "-q", "--format", "csv"]) == 0
    rows = _cells(out / "pairs.csv")
    header, body = rows[0], rows[1:]
    assert body
    for row in body:
        for col, cell in zip(header, row):
            assert not cell.startswith(DANGEROUS) or _is_number(cell), (col, cell)
    left = body[0][header.index("left")]
    assert left == """'=HYPERLINK("http://x","y").0.weight"""  # visible, one quote added
    df = pd.read_csv(out / "pairs.csv")  # numbers are still numbers
    assert pd.api.types.is_float_dtype(df["overlap"]) and pd.api.types.is_integer_dtype(df["dim"])


def _is_number(cell):
    """A decimal literal a spreadsheet reads as a number: only digits, sign, point, exponent,
    and Python's float() accepts it."""
    if not re.fullmatch(r"[0-9.eE+-]+", cell):
        return False
    try:
        float(cell)
        return True
    except ValueError:
        return False


def test_negative_numbers_stay_numeric(tmp_path):
    frame = pd.DataFrame({"x": [-0.5, 1.0, -1e-300], "n": [-3, 4, 5],
                          "s": ["-0.5", "-inf", "-x"], "mixed": [-0.5, "=1+1", None]})
    from flagalign._output import OutputFolder

    with OutputFolder(tmp_path, set_name="t") as tx:
        tx.write_csv("t.csv", frame)
    rows = _cells(tmp_path / "t.csv")
    assert rows[0] == ["x", "n", "s", "mixed", "run_id"]
    assert [r[:4] for r in rows[1:]] == [["-0.5", "-3", "-0.5", "-0.5"],
                                         ["1.0", "4", "'-inf", "'=1+1"],
                                         ["-1e-300", "5", "'-x", ""]]
    back = pd.read_csv(tmp_path / "t.csv")
    assert back["x"].tolist() == [-0.5, 1.0, -1e-300] and back["n"].tolist() == [-3, 4, 5]


@given(st.text(min_size=1, max_size=12))
def test_no_string_cell_starts_a_formula(s):
    from flagalign._output import neutralise_csv_cells

    out = neutralise_csv_cells(pd.DataFrame({"c": [s]}))["c"].iloc[0]
    if s.startswith(DANGEROUS) and not _is_number(s):
        assert out == "'" + s
    else:
        assert out == s


@given(st.from_regex(r"-?[0-9]{1,4}(\.[0-9]{1,3})?(e-?[0-9]{1,2})?", fullmatch=True))
def test_numeric_strings_are_left_alone(s):
    from flagalign._output import neutralise_csv_cells

    assert neutralise_csv_cells(pd.DataFrame({"c": [s]}))["c"].iloc[0] == s


@pytest.mark.parametrize("label", ["=cmd", "+1+1", "@x", "-y"])
def test_column_labels_are_neutralised(label):
    from flagalign._output import neutralise_csv_cells

    assert neutralise_csv_cells(pd.DataFrame({label: ["a"]})).columns[0] == "'" + label
