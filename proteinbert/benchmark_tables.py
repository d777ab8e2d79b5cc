"""The benchmark suite's tables: ``<prefix>.csv`` (one row per benchmark), ``<prefix>.md`` and
``<prefix>.json`` (the runs behind them: command, machine, versions), written atomically.

>>> [p.name for p in table_paths("results/scratch")]
['scratch.csv', 'scratch.md']
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError
from .io_utils import atomic_write_path, check_output_path


#: The CSV's columns, in order (the first four are the comparison with the paper).
COLUMNS = ("benchmark", "metric", "score", "paper_no_pretraining", "paper", "dataset", "output", "n_train",
           "n_valid", "n_test", "seed", "wall_s", "start", "machine", "status", "note", "settings")


def read_results(csv_path) -> pd.DataFrame | None:
    """A suite CSV written by :func:`write_tables`, or ``None`` if there is none."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        return None
    frame = pd.read_csv(csv_path, dtype={"settings": str, "status": str, "note": str, "machine": str},
                        keep_default_na=False, na_values=[""])
    missing = [c for c in ("benchmark", "status", "settings") if c not in frame.columns]
    if missing:
        raise InputError(f"{csv_path} is not a benchmark-suite table (no column {', '.join(missing)}); "
                         "write to another output prefix")
    return frame


def to_markdown(frame: pd.DataFrame, runs=None) -> str:
    """The table as GitHub Markdown (no extra dependency), after the runs' commands, machines and
    versions when ``runs`` (the list kept in ``<prefix>.json``) is given."""
    cols = ["benchmark", "output", "metric", "score", "paper_no_pretraining", "paper", "n_train", "n_test",
            "seed", "wall_s", "start", "status", "note"]
    cols = [c for c in cols if c in frame.columns]

    def cell(v):
        if isinstance(v, float):
            return "" if np.isnan(v) else f"{v:.3f}"
        return str(v).replace("|", "\\|")

    lines = []
    for i, run in enumerate(runs or [], 1):
        command = shlex.join(run["command"]) if run.get("command") else "(from Python)"
        versions = ", ".join(f"{k} {v}" for k, v in run["versions"].items() if v)
        lines += [f"Run {i} ({run['started']}): `{command}`", "",
                  f"- benchmarks run: {', '.join(run['benchmarks']) or 'none (all finished earlier)'}",
                  f"- machine: {run['machine']}", f"- versions: {versions}", ""]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r[c]) for c in cols) + " |" for _, r in frame.iterrows()]
    return "\n".join(lines) + "\n"


def table_paths(out_prefix) -> tuple[Path, Path]:
    """``<prefix>.csv`` and ``<prefix>.md``: the suffixes are appended, never substituted.

    >>> [str(p) for p in table_paths("results/run.v2")]
    ['results/run.v2.csv', 'results/run.v2.md']
    """
    out_prefix = Path(out_prefix)
    return out_prefix.with_name(out_prefix.name + ".csv"), out_prefix.with_name(out_prefix.name + ".md")


def check_table_paths(out_prefix, inputs=()) -> tuple[Path, Path]:
    """Refuse (UsageError) tables that would overwrite one of ``inputs`` (see :func:`input_files`)."""
    paths = table_paths(out_prefix)
    for path in paths:
        check_output_path(path, inputs, "--out")
    return paths


def checkpoints_path(out_prefix) -> Path:
    """``<prefix>.checkpoints/``: the fine-tuning of the benchmark running, saved after every epoch
    (one folder per benchmark, deleted once its row is written), so a stopped suite continues
    within a benchmark too."""
    out_prefix = Path(out_prefix)
    return out_prefix.with_name(out_prefix.name + ".checkpoints")


def sidecar_path(out_prefix) -> Path:
    """``<prefix>.json``: the runs (command, machine, versions) behind the tables."""
    out_prefix = Path(out_prefix)
    return out_prefix.with_name(out_prefix.name + ".json")


def write_tables(frame: pd.DataFrame, out_prefix, inputs=(), run: dict | None = None) -> tuple[Path, Path]:
    """Write ``<prefix>.csv`` and ``<prefix>.md`` atomically (never onto one of ``inputs``). With
    ``run``, record it in ``<prefix>.json`` (replacing the entry of the same start time); that
    file's runs head the Markdown."""
    csv_path, md_path = check_table_paths(out_prefix, inputs)
    json_path = sidecar_path(out_prefix)
    runs = json.loads(json_path.read_text())["runs"] if json_path.is_file() else []
    if run is not None:
        check_output_path(json_path, inputs, "--out")
        runs = [r for r in runs if r.get("started") != run["started"]] + [run]
        with atomic_write_path(json_path) as tmp:
            Path(tmp).write_text(json.dumps({"runs": runs}, indent=1))
    with atomic_write_path(csv_path) as tmp:
        frame.to_csv(tmp, index=False)
    with atomic_write_path(md_path) as tmp:
        Path(tmp).write_text(to_markdown(frame, runs))
    return csv_path, md_path


__all__ = ["COLUMNS", "check_table_paths", "checkpoints_path", "read_results", "sidecar_path", "table_paths",
           "to_markdown", "write_tables"]
