"""splade_rs.train: `splade train` from Python, on real Quora duplicate pairs
(../shared/data/quora-pairs) with the default model splade-tiny, as the seed card trains."""

import csv
import json
import math
import pathlib

import numpy as np
import pytest

import splade_rs

DATA = pathlib.Path(__file__).resolve().parents[4] / ".." / "shared" / "data" / "quora-pairs"


def quora_rows(split, n, duplicates_only=True):
    path = DATA / split / "pairs.tsv"
    assert path.exists(), f"{path}: the Quora pairs of ../shared/data are missing"
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if duplicates_only and row["label"] != "1":
                continue
            rows.append(row)
            if len(rows) == n:
                break
    return rows


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("quora")
    train = root / "train.jsonl"
    with open(train, "w", encoding="utf-8") as f:
        for r in quora_rows("train", 24):
            f.write(json.dumps({"anchor": r["sentence1"], "positive": r["sentence2"]}) + "\n")
    pairs = root / "dev.tsv"
    with open(pairs, "w", encoding="utf-8") as f:
        f.write("sentence1\tsentence2\tlabel\n")
        for r in quora_rows("dev", 40, duplicates_only=False):
            f.write(f"{r['sentence1']}\t{r['sentence2']}\t{r['label']}\n")
    return root, train, pairs


def test_train_reports_progress_and_writes_a_loadable_model(data):
    root, train, pairs = data
    events = []
    report = splade_rs.train(
        train=train,
        output=root / "run",
        batch_size=8,
        max_steps=3,
        lr=1e-4,
        logging_steps=1,
        eval_pairs=pairs,
        progress=events.append,
    )
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and events[0]["total_steps"] == 3 and events[0]["rows"] == 24
    assert [e["step"] for e in events if e["event"] == "step"] == [1, 2, 3]
    logs = [e for e in events if e["event"] == "log"]
    assert [e["step"] for e in logs] == [1, 2, 3]
    assert all(math.isfinite(e["loss"]) and e["loss"] > 0 for e in logs)
    evaluations = [e for e in events if e["event"] == "evaluation"]
    assert [e["step"] for e in evaluations] == [3]
    assert 0.0 <= evaluations[0]["metrics"]["eval_dot_ap"] <= 1.0

    # The report and the files say the same as the callback.
    assert report["steps"] == 3 and report["interrupted_at"] is None
    assert [e["loss"] for e in report["log"]] == [e["loss"] for e in logs]
    assert report["evaluations"][0]["metrics"] == evaluations[0]["metrics"]
    written = [json.loads(l) for l in (root / "run" / "training_log.jsonl").read_text().splitlines()]
    assert [w["loss"] for w in written] == [e["loss"] for e in logs]
    assert (root / "run" / "final" / "README.md").exists()

    # The trained model loads and differs from the one it started from.
    trained = splade_rs.SparseEncoder(str(root / "run" / "final"))
    base = splade_rs.SparseEncoder("splade-tiny")
    texts = ["How do I learn Python quickly?", "What is the capital of India?"]
    a = trained.encode(texts).toarray()
    b = base.encode(texts).toarray()
    assert a.shape == b.shape == (2, 30522)
    assert not np.allclose(a, b)


def test_options_from_a_dict_a_config_file_and_keywords_train_the_same_model(data):
    root, train, _ = data
    common = {"train": str(train), "batch_size": 8, "max_steps": 2, "lr": 1e-4, "seed": 7}
    a = splade_rs.train(common, output=root / "dict")
    config = root / "run.toml"
    config.write_text(f'train = "{train}"\nbatch_size = 8\nmax_steps = 50\nlr = 1e-4\nseed = 7\n')
    # Keywords win over the file, as flags win over it on the command line.
    b = splade_rs.train(config=config, max_steps=2, output=root / "toml")
    assert a["steps"] == b["steps"] == 2
    assert [e["loss"] for e in a["log"]] == [e["loss"] for e in b["log"]]
    texts = ["Why is the sky blue?"]
    va = splade_rs.SparseEncoder(str(root / "dict" / "final")).encode(texts)
    vb = splade_rs.SparseEncoder(str(root / "toml" / "final")).encode(texts)
    assert (va != vb).nnz == 0


def test_a_raising_callback_stops_the_run_with_a_checkpoint(data):
    root, train, _ = data

    class Stop(Exception):
        pass

    def progress(event):
        if event["event"] == "step" and event["step"] == 2:
            raise Stop("enough")

    with pytest.raises(Stop, match="enough"):
        splade_rs.train(train=train, output=root / "stopped", batch_size=8, max_steps=5, progress=progress)
    checkpoints = sorted(p.name for p in (root / "stopped").iterdir() if p.name.startswith("checkpoint-"))
    assert checkpoints == ["checkpoint-2"]
    assert not (root / "stopped" / "final").exists()
    # ... and the run resumes from it to the end.
    report = splade_rs.train(
        train=train, output=root / "stopped", batch_size=8, max_steps=5,
        resume_from=root / "stopped" / "checkpoint-2",
    )
    assert report["steps"] == 5


def test_bad_options_raise_before_any_work(data, tmp_path):
    root, train, _ = data
    out = tmp_path / "out"
    cases = [
        ({"lr": float("nan")}, ValueError, "lr"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"learning_rate": 1e-5}, ValueError, "learning_rate"),
        ({"max_steps": "three"}, ValueError, "max_steps"),
        ({"loss": "cosent-typo"}, ValueError, "cosent-typo"),
    ]
    for extra, error, word in cases:
        with pytest.raises(error, match=word):
            splade_rs.train(train=train, output=out, **extra)
        assert not out.exists() or not any(out.iterdir()), extra
    with pytest.raises(ValueError, match="train"):
        splade_rs.train(output=out)
    with pytest.raises(ValueError, match="given twice"):
        splade_rs.train({"lr": 1e-5}, lr=1e-4, train=train, output=out)
    with pytest.raises(OSError):
        splade_rs.train(train=tmp_path / "missing.jsonl", output=out)
    # An output folder holding an earlier run is refused without overwrite=True.
    with pytest.raises(OSError, match="already holds a training run"):
        splade_rs.train(train=train, output=root / "run", max_steps=1)
