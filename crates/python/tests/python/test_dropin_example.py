"""The drop-in example (crates/python/examples/dropin_sentence_transformers.py): a
sentence-transformers script run as written and with only its import line changed to
``from splade_rs import SparseEncoder`` prints the same lines: the same words and tokens, and
numbers equal to their printed precision (within one unit of the last printed digit)."""

import pathlib
import re
import subprocess
import sys

import pytest

import splade_rs

pytest.importorskip(
    "sentence_transformers",
    reason="sentence-transformers is not installed (crates/python/requirements-test.txt has it)",
)

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "dropin_sentence_transformers.py"
NUMBER = re.compile(r"-?\d+\.\d+")


def run(script, model):
    out = subprocess.run(
        [sys.executable, str(script), model], capture_output=True, text=True, timeout=600,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "2"},
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_the_script_prints_the_same_numbers_with_either_import(tmp_path):
    source = EXAMPLE.read_text()
    original = "from sentence_transformers import SparseEncoder\n"
    assert source.count(original) == 1
    changed = tmp_path / "dropin_splade_rs.py"
    changed.write_text(source.replace(original, "from splade_rs import SparseEncoder\n"))
    model = splade_rs.SparseEncoder("splade-tiny")._native.folder
    reference = run(EXAMPLE, model)
    ours = run(changed, model)
    assert len(reference) == len(ours) == 1 + 2 + 2 + 1, (reference, ours)
    for a, b in zip(ours, reference):
        assert NUMBER.sub("#", a) == NUMBER.sub("#", b), (a, b)
        for x, y in zip(NUMBER.findall(a), NUMBER.findall(b)):
            last_digit = 10.0 ** -len(y.split(".")[1])
            assert abs(float(x) - float(y)) <= last_digit * 1.01, (a, b)
