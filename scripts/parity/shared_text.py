"""Fixtures refer to the texts of `../shared/data` instead of holding copies of them.

The shared data sets are under research / non-commercial licences: the repository may not
carry their texts. A fixture that needs one of them stores a reference string instead,

    @shared:<path>:<line>:<selector>[:<chars>]

- `<path>`: the file, relative to the shared data folder (`.gz` files are read decompressed);
- `<line>`: the 1-based line of that file;
- `<selector>`: `c<N>` the N-th (0-based) tab-separated column of the line; `f.<name>` the
  JSON field `<name>` of the line; `tt` the BEIR document text (`title + " " + text`, or
  `text` alone when the title is empty);
- `<chars>`: keep only the first `<chars>` characters (Unicode code points).

The tests resolve references when they read a fixture (Rust: `splade-testkit`; Python:
`crates/python/tests/python/conftest.py` via `resolve`), so the reference numbers in the
fixture still describe the exact texts the reference library saw.

Use:
    python3 scripts/parity/shared_text.py --rewrite fixtures/eval/ir_real.json ...
        replaces every string found in the shared data by its reference, checks that resolving
        the result gives the original back, and writes the file in place;
    python3 scripts/parity/shared_text.py --check fixtures
        lists fixture strings still copied from the shared data (exit 1 when there are any).
The generator scripts call `to_refs` before writing, so regenerated fixtures carry references.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from functools import lru_cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = Path(os.environ.get("SPLADE_RS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
PREFIX = "@shared:"
# Strings shorter than this, or without a space (ids, names, keys), stay literal.
MIN_CHARS = 10
# The prefix length used to find candidates for cut texts.
KEY_CHARS = 10


def _is_text(s: str) -> bool:
    return len(s) >= MIN_CHARS and " " in s


def _open(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


@lru_cache(maxsize=64)
def _lines(path: Path) -> list[str]:
    # Lines end at "\n" only (a stray "\r" inside a line stays), as the Rust reader splits.
    with _open(path) as f:
        return [line.rstrip("\r") for line in f.read().split("\n")]


def _fields(line: str) -> dict[str, str]:
    """Every selectable string of one line, by selector."""
    out: dict[str, str] = {}
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            for key, value in record.items():
                if isinstance(value, str):
                    out[f"f.{key}"] = value
            if isinstance(record.get("text"), str):
                title = record.get("title")
                out["tt"] = (title + " " + record["text"]) if isinstance(title, str) and title else record["text"]
            return out
    for i, cell in enumerate(line.split("\t")):
        out[f"c{i}"] = cell
    return out


def resolve_one(ref: str, data: Path = DEFAULT_DATA) -> str:
    """The text a reference string names."""
    parts = ref[len(PREFIX):].split(":")
    if len(parts) not in (3, 4):
        raise ValueError(f"malformed shared-data reference {ref!r}")
    path, line, selector = parts[0], int(parts[1]), parts[2]
    lines = _lines(data / path)
    if not 1 <= line <= len(lines):
        raise ValueError(f"{ref!r}: {data / path} has {len(lines)} lines")
    fields = _fields(lines[line - 1])
    if selector not in fields:
        raise ValueError(f"{ref!r}: line {line} of {data / path} has no {selector}")
    text = fields[selector]
    return text[: int(parts[3])] if len(parts) == 4 else text


def resolve(obj, data: Path = DEFAULT_DATA):
    """`obj` with every reference string replaced by its text."""
    if isinstance(obj, str):
        return resolve_one(obj, data) if obj.startswith(PREFIX) else obj
    if isinstance(obj, list):
        return [resolve(v, data) for v in obj]
    if isinstance(obj, tuple):
        return tuple(resolve(v, data) for v in obj)
    if isinstance(obj, dict):
        return {k: resolve(v, data) for k, v in obj.items()}
    return obj


class SharedIndex:
    """Every string of the shared data, by text, with a reference to one place it stands."""

    def __init__(self, data: Path = DEFAULT_DATA):
        self.data = data
        self.exact: dict[str, str] = {}
        self.by_prefix: dict[str, list[tuple[str, str]]] = {}
        paths = [
            Path(root) / name
            for root, _, files in os.walk(data)
            for name in files
            if not name.endswith((".md", ".txt")) and not name.startswith(".")
        ]
        # Plain files first: a text also found in a compressed raw release refers to the split.
        for path in sorted(paths, key=lambda p: (p.suffix == ".gz", p.as_posix())):
            rel = path.relative_to(data).as_posix()
            if ":" in rel:
                continue
            try:
                lines = _lines(path)
            except (UnicodeDecodeError, OSError):
                continue
            for n, line in enumerate(lines, start=1):
                for selector, text in _fields(line).items():
                    if not _is_text(text) or text in self.exact:
                        continue
                    ref = f"{PREFIX}{rel}:{n}:{selector}"
                    self.exact[text] = ref
                    self.by_prefix.setdefault(text[:KEY_CHARS], []).append((text, ref))

    def ref(self, s: str) -> str | None:
        if not _is_text(s) or s.startswith(PREFIX):
            return None
        if s in self.exact:
            return self.exact[s]
        for text, ref in self.by_prefix.get(s[:KEY_CHARS], []):
            if text.startswith(s):
                return f"{ref}:{len(s)}"
        return None


_INDEX: SharedIndex | None = None


def shared_index(data: Path = DEFAULT_DATA) -> SharedIndex:
    global _INDEX
    if _INDEX is None or _INDEX.data != data:
        _INDEX = SharedIndex(data)
    return _INDEX


def to_refs(obj, data: Path = DEFAULT_DATA):
    """`obj` with every string that the shared data holds replaced by its reference (checked)."""
    index = shared_index(data)

    def walk(o):
        if isinstance(o, str):
            ref = index.ref(o)
            if ref is not None and resolve_one(ref, data) == o:
                return ref
            return o
        if isinstance(o, (list, tuple)):
            return [walk(v) for v in o]
        if isinstance(o, dict):
            return {k: walk(v) for k, v in o.items()}
        return o

    out = walk(obj)
    if resolve(out, data) != json.loads(json.dumps(obj)):
        raise AssertionError("shared-data references do not resolve to the original texts")
    return out


def redact_markdown(text: str, data: Path = DEFAULT_DATA) -> str:
    """A markdown document (a model card) with the shared-data texts it quotes (table cells,
    `<code>` spans, YAML list items, quoted strings) replaced by their references."""
    import re

    index = shared_index(data)
    fragments: set[str] = set()
    for line in text.split("\n"):
        for cell in line.split("|"):
            c = cell.strip()
            if c.startswith("<code>") and c.endswith("</code>"):
                c = c[len("<code>") : -len("</code>")]
            fragments.add(c)
        m = re.match(r"^\s*-\s+(.*)$", line)
        if m:
            fragments.add(m.group(1).strip().strip("'\""))
        fragments.update(re.findall(r"'([^']{10,})'", line))
        fragments.update(re.findall(r'"([^"]{10,})"', line))
    for fragment in sorted(fragments, key=len, reverse=True):
        ref = index.ref(fragment)
        if ref is not None and resolve_one(ref, data) == fragment:
            text = text.replace(fragment, ref)
    return text


def _copied(obj, index: SharedIndex, found: list[str]) -> None:
    if isinstance(obj, str):
        if index.ref(obj) is not None:
            found.append(obj)
    elif isinstance(obj, list):
        for v in obj:
            _copied(v, index, found)
    elif isinstance(obj, dict):
        for v in obj.values():
            _copied(v, index, found)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--rewrite", nargs="*", type=Path, default=[], help="JSON fixtures to rewrite in place")
    ap.add_argument("--check", type=Path, help="a folder of JSON fixtures to check for copied texts")
    args = ap.parse_args()
    for path in args.rewrite:
        raw = path.read_text(encoding="utf-8")
        obj = json.loads(raw)
        out = to_refs(obj, args.data_dir)
        indent = 1 if raw.startswith("{\n") or raw.startswith("[\n") else None
        path.write_text(json.dumps(out, ensure_ascii=False, indent=indent) + "\n", encoding="utf-8")
        print(f"{path}: {len(raw)} -> {path.stat().st_size} bytes")
    if args.check:
        index = shared_index(args.data_dir)
        bad = 0
        for path in sorted(args.check.rglob("*.json")):
            found: list[str] = []
            _copied(json.loads(path.read_text(encoding="utf-8")), index, found)
            if found:
                bad += 1
                print(f"{path}: {len(found)} strings copied from the shared data, e.g. {found[0][:60]!r}")
        sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
