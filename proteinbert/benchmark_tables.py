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


#: The CSV's columns, in order (the first four are the comparison with the paper; ``baseline``: the
#: score of a prediction that ignores the sequence, see :mod:`proteinbert.training.baselines`).
COLUMNS = ("benchmark", "metric", "score", "paper_no_pretraining", "paper", "baseline", "dataset", "output",
           "n_train", "n_valid", "n_test", "seed", "wall_s", "start", "machine", "status", "note", "settings")


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
    cols = ["benchmark", "output", "metric", "score", "paper_no_pretraining", "paper", "baseline", "n_train",
            "n_test", "seed", "wall_s", "start", "status", "note"]
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


def compare(first: pd.DataFrame, second: pd.DataFrame, spread: float = 0.0) -> pd.DataFrame:
    """One row per benchmark finished (status ``ok``) in both suite tables with the same metric:
    ``first`` and ``second`` (the two scores), ``baseline`` (the first table's, NaN where it has none),
    ``difference`` (first − second) and ``higher``
    (``"first"``, ``"second"``, or ``"within spread"`` when the difference is no larger than
    ``spread``, a seed standard deviation; with 0, only exact ties). Every suite metric (AUC,
    accuracy, Spearman ρ) is better when higher. Benchmarks finished in only one table are left out.

    >>> a = pd.DataFrame({"benchmark": ["x", "y"], "metric": ["AUC", "AUC"], "score": [0.9, 0.8], "status": "ok"})
    >>> b = pd.DataFrame({"benchmark": ["x", "y"], "metric": ["AUC", "AUC"], "score": [0.7, 0.798], "status": "ok"})
    >>> compare(a, b, spread=0.005)[["benchmark", "higher"]].values.tolist()
    [['x', 'first'], ['y', 'within spread']]
    """
    if spread < 0 or not np.isfinite(spread):
        raise ValueError(f"spread must be a finite number >= 0, got {spread!r}")
    # The baseline is the data's, not the model's: the first table's serves both.
    cols = ["benchmark", "metric", "score"]
    ok_first = first.loc[first["status"] == "ok", cols + ["baseline"] * ("baseline" in first.columns)]
    ok_second = second.loc[second["status"] == "ok", cols]
    both = ok_first.merge(ok_second, on="benchmark", suffixes=("_first", "_second"))
    mismatched = both[both["metric_first"] != both["metric_second"]]
    if len(mismatched):
        r = mismatched.iloc[0]
        raise InputError(f"benchmark {r['benchmark']!r} is scored by {r['metric_first']} in one table and by "
                         f"{r['metric_second']} in the other: these are not the same benchmark setting")
    out = pd.DataFrame({"benchmark": both["benchmark"], "metric": both["metric_first"],
                        "first": both["score_first"], "second": both["score_second"]})
    out["baseline"] = both["baseline"] if "baseline" in both.columns else np.nan
    out["difference"] = out["first"] - out["second"]
    out["higher"] = np.where(out["difference"].abs() <= spread, "within spread",
                             np.where(out["difference"] > 0, "first", "second"))
    return out.reset_index(drop=True)


def table_csv(path) -> Path:
    """The CSV a user names by ``path``: the file itself, or ``<prefix>.csv`` for an output prefix.

    >>> str(table_csv("results/scratch")), str(table_csv("results/scratch.csv"))
    ('results/scratch.csv', 'results/scratch.csv')
    """
    path = Path(path)
    return path if path.suffix == ".csv" else table_paths(path)[0]


def read_table(path) -> pd.DataFrame:
    """The suite table at :func:`table_csv` ``(path)`` (InputError if there is none)."""
    csv_path = table_csv(path)
    frame = read_results(csv_path)
    if frame is None:
        raise InputError(f"no benchmark-suite table at {csv_path}")
    return frame


def comparison_markdown(comparison: pd.DataFrame, labels=("first", "second"), spread: float = 0.0,
                        sources=None) -> str:
    """:func:`compare`'s table as Markdown, the two scores headed by ``labels``, then one line
    counting on how many benchmarks each side scored higher. ``baseline`` is what a prediction that
    ignores the sequence scores (empty for tables written without it). With ``sources`` (the two
    tables' paths), a first line names them.

    >>> c = pd.DataFrame({"benchmark": ["x"], "metric": ["AUC"], "first": [0.9], "second": [0.7],
    ...                   "baseline": [0.5], "difference": [0.2], "higher": ["first"]})
    >>> print(comparison_markdown(c, ("pretrained", "scratch")).splitlines()[-1])
    pretrained higher on 1 of 1 benchmarks, scratch higher on 0.
    """
    names = {"first": labels[0], "second": labels[1], "within spread": "within the seed spread"}
    head = [] if sources is None else [
        f"{labels[0]}: `{sources[0]}`; {labels[1]}: `{sources[1]}` (each table's `.md` says how its rows were "
        "made); baseline: what a prediction that ignores the sequence scores.", ""]
    lines = head + [f"| benchmark | metric | {labels[0]} | {labels[1]} | baseline | difference | higher |",
                    "|---|---|---|---|---|---|---|"]
    lines += [f"| {r.benchmark} | {r.metric} | {r.first:.3f} | {r.second:.3f} | "
              f"{'' if np.isnan(r.baseline) else f'{r.baseline:.3f}'} | {r.difference:+.3f} | {names[r.higher]} |"
              for r in comparison.itertuples()]
    counts = comparison["higher"].value_counts()
    summary = (f"{labels[0]} higher on {counts.get('first', 0)} of {len(comparison)} benchmarks, "
               f"{labels[1]} higher on {counts.get('second', 0)}")
    if spread:
        summary += f", {counts.get('within spread', 0)} within the seed spread (difference ≤ {spread:g})"
    return "\n".join(lines + ["", summary + "."]) + "\n"


__all__ = ["COLUMNS", "check_table_paths", "checkpoints_path", "compare", "comparison_markdown", "read_results",
           "read_table", "sidecar_path", "table_csv", "table_paths", "to_markdown", "write_tables"]
