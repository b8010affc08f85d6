"""Training from Python: :func:`train` runs ``splade train`` with the same options (the
names of its ``--config`` TOML keys, as keyword arguments or a dictionary) and writes the same
folder (``checkpoint-STEP/``, ``final/`` in the sentence-transformers layout, the logs, the
chart and the model card), with an optional progress callback."""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, Mapping, Optional

from ._native import train as _train


def _plain(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def train(
    options: Optional[Mapping[str, Any]] = None,
    *,
    progress: Optional[Callable[[Dict[str, Any]], None]] = None,
    show_progress_bar: bool = False,
    **kwargs: Any,
) -> Dict[str, Any]:
    """Fine-tunes a SPLADE model with SpladeLoss as ``splade train`` does.

    Options are ``splade train``'s, spelled as its ``--config`` keys (``model``, ``train``,
    ``output``, ``batch_size``, ``lr``, ``epochs``, ``max_steps``, ``loss``,
    ``lambda_query``, ``eval_pairs``, ``eval_beir``, ``best_metric``, ``resume_from``,
    ``overwrite``, ...; ``config`` names a TOML file holding more of them), given as the
    ``options`` dictionary, as keyword arguments, or both (a name in both is an error).
    Unset options take the seed model card's recipe. ``train`` and ``output`` are required.

    ``progress``, when given, is called with one dictionary per event: ``{"event": "start",
    "total_steps", "rows", ...}``, ``{"event": "step", "step", "total_steps"}`` after every
    optimiser step, ``{"event": "log", "step", "loss", ...}`` every ``logging_steps``, and
    ``{"event": "evaluation", "step", "metrics"}``. If it raises (or on Ctrl-C) the run stops
    after the step in flight, saving a checkpoint, and the exception propagates.

    Returns the run's report: ``steps``, ``log`` (the logged entries), ``evaluations``,
    ``best_step``, ``output`` and ``interrupted_at``. Raises ``ValueError`` for bad options or
    data and ``OSError`` for files (an output folder holding an earlier run needs
    ``overwrite=True`` or ``resume_from``).
    """
    merged: Dict[str, Any] = {}
    for source in (options or {}), kwargs:
        for key, value in source.items():
            if key in merged:
                raise ValueError(f"training option {key} is given twice")
            merged[str(key)] = _plain(value)
    config = merged.pop("config", None)
    report = _train(merged, config, progress, show_progress_bar)
    return json.loads(report)
