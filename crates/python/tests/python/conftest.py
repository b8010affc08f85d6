"""Shared fixtures of the splade_rs tests: the committed parity fixtures of
scripts/parity/generate_encoder_fixtures.py (sentence-transformers 6.2 + torch outputs)."""

import json
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[4]
# Fixtures refer to the texts of ../shared/data instead of copying them (licences): resolve.
sys.path.insert(0, str(REPO / "scripts" / "parity"))
from shared_text import resolve  # noqa: E402
FIXTURES = REPO / "fixtures" / "encoder"
MODELS = ["bert-tied-v6", "bert-untied-seedlayout", "distilbert-tied-seedlayout", "distilbert-untied-v6"]


def load_expected(name):
    return json.loads((FIXTURES / name / "expected.json").read_text())


@pytest.fixture(scope="session")
def texts():
    return resolve(json.loads((FIXTURES / "texts.json").read_text()))


def model_path(name):
    """A fixture model folder, or the default model for ``splade-tiny`` (fetched and cached
    by splade-rs itself, as the CLI does)."""
    return "splade-tiny" if name == "splade-tiny" else str(FIXTURES / "models" / name)
