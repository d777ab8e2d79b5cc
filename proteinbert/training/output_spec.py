"""What a fine-tuned model predicts, and the labels it learns from.

An :class:`OutputSpec` says whether the output is global (per protein) or local (per residue)
and binary, categorical, numeric or multi-label; :func:`encode_labels` turns a column of labels
into training targets, naming every bad row.

>>> spec = OutputSpec.from_labels("global", "categorical", ["b", "a", "b"])
>>> spec.labels, spec.n_outputs, spec.activation
(('a', 'b'), 2, 'softmax')
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .._numbers import finite_float
from ..errors import InputError

logger = logging.getLogger(__name__)


LEVELS = ("global", "local")
TASKS = ("binary", "categorical", "numeric", "multilabel")
MULTILABEL_SEPARATOR = ";"
_MAX_ROWS_IN_ERROR = 10


# ----------------------------------------------------------------------------------------------
# Output specification and label encoding
# ----------------------------------------------------------------------------------------------

def _label_sort_key(label: str):
    # Numeric labels (fold ids) sort as numbers, the rest as strings.
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


@dataclass(frozen=True)
class OutputSpec:
    """What the head predicts: ``level`` (``"global"`` / ``"local"``) × ``task``.

    ``labels`` lists the class names (categorical, multi-label); binary and numeric outputs
    leave it empty. Per-residue (local) categorical labels are single characters.

    >>> OutputSpec("local", "binary").loss
    'binary_crossentropy'
    >>> OutputSpec.from_json(OutputSpec("global", "multilabel", ("x", "y")).to_json()).labels
    ('x', 'y')
    """

    level: str
    task: str
    labels: tuple = ()

    def __post_init__(self):
        if self.level not in LEVELS:
            raise InputError(f"level must be one of {LEVELS}. Received: level={self.level!r}")
        if self.task not in TASKS:
            raise InputError(f"task must be one of {TASKS}. Received: task={self.task!r}")
        if self.task == "multilabel" and self.level == "local":
            raise InputError("multi-label outputs are global only. Received: level='local', task='multilabel'")
        labels = tuple(str(x) for x in self.labels)
        object.__setattr__(self, "labels", labels)
        if self.task in ("categorical", "multilabel"):
            # An empty list means "take the labels from the training set" (see from_labels).
            if len(labels) == 1 and self.task == "categorical":
                raise InputError(f"a categorical output needs at least 2 labels. Received: labels={labels!r}")
            if len(set(labels)) != len(labels):
                raise InputError(f"labels must be unique. Received: labels={labels!r}")
            if self.level == "local" and any(len(x) != 1 for x in labels):
                raise InputError(f"per-residue labels must be single characters. Received: labels={labels!r}")
        elif labels:
            raise InputError(f"{self.task} outputs take no label list. Received: labels={labels!r}")

    @classmethod
    def from_labels(cls, level: str, task: str, train_labels: Sequence) -> "OutputSpec":
        """The spec with the label list found in ``train_labels`` (sorted; numbers numerically)."""
        if task not in ("categorical", "multilabel"):
            return cls(level, task)
        seen: set[str] = set()
        for value in train_labels:
            if _is_missing(value):
                continue
            if task == "multilabel":
                seen.update(_multilabel_names(value))
            elif level == "local":
                seen.update(str(value))
            else:
                seen.add(as_label_str(value))
        return cls(level, task, tuple(sorted(seen, key=_label_sort_key)))

    @property
    def n_outputs(self) -> int:
        return len(self.labels) if self.task in ("categorical", "multilabel") else 1

    @property
    def activation(self) -> str:
        return {"binary": "sigmoid", "multilabel": "sigmoid", "categorical": "softmax", "numeric": "linear"}[self.task]

    @property
    def loss(self) -> str:
        return {"binary": "binary_crossentropy", "multilabel": "binary_crossentropy",
                "categorical": "sparse_categorical_crossentropy", "numeric": "mean_squared_error"}[self.task]

    @property
    def name(self) -> str:
        return f"{self.level}-{self.task}"

    def to_dict(self) -> dict:
        return {"level": self.level, "task": self.task, "labels": list(self.labels)}

    @classmethod
    def from_dict(cls, data: dict) -> "OutputSpec":
        return cls(data["level"], data["task"], tuple(data.get("labels", ())))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "OutputSpec":
        return cls.from_dict(json.loads(text))


def _is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str) and value.strip() == "":
        return True
    try:
        return bool(np.ndim(value) == 0 and np.isnan(value))
    except (TypeError, ValueError):
        return False


def as_label_str(value) -> str:
    # 13, 13.0, "13" are one class; keep strings as given.
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _multilabel_names(value) -> list[str]:
    if isinstance(value, str):
        return [x.strip() for x in value.split(MULTILABEL_SEPARATOR) if x.strip()]
    return [as_label_str(x) for x in value]


def require_label_list(spec: OutputSpec) -> None:
    if spec.task in ("categorical", "multilabel") and not spec.labels:
        raise InputError(f"the {spec.name} output has no label list yet: use OutputSpec.from_labels(...)")


def row_name(row_ids, i: int) -> str:
    return f"row {i}" if row_ids is None else str(row_ids[i])


def raise_bad_rows(problems: list[str], what: str) -> None:
    if problems:
        shown = "; ".join(problems[:_MAX_ROWS_IN_ERROR])
        more = f" (and {len(problems) - _MAX_ROWS_IN_ERROR} more)" if len(problems) > _MAX_ROWS_IN_ERROR else ""
        raise InputError(f"{what}: {len(problems)} bad row(s): {shown}{more}")


def _parse_binary(value):
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, str):
        value = value.strip()
        if value in ("0", "1"):
            return float(value)
        try:
            value = float(value)
        except ValueError:
            return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number in (0.0, 1.0) else None


def _parse_local_numbers(value):
    if isinstance(value, str):
        parts = value.replace(",", " ").replace(";", " ").split()
    else:
        parts = list(np.ravel(np.asarray(value, dtype=object)))
    numbers = [finite_float(x) for x in parts]
    return numbers


def require_both_classes(spec: OutputSpec, labels: Sequence, what: str = "the training set") -> None:
    """Refuse binary training labels of a single class: nothing can be learnt and AUC is undefined.

    >>> require_both_classes(OutputSpec("global", "binary"), ["1", 1, 1.0])
    Traceback (most recent call last):
    ...
    proteinbert.errors.InputError: the training set has only label '1' (3 records): a binary task needs examples of both 0 and 1
    """
    if spec.task != "binary" or labels is None:
        return
    present = [y for y in labels if not _is_missing(y)]
    if spec.level == "global":
        seen = {as_label_str(y) for y in present}
    else:
        seen = set("".join(str(y) for y in present))
    if len(seen) == 1:
        raise InputError(f"{what} has only label {seen.pop()!r} ({len(present)} records): a binary task needs "
                         "examples of both 0 and 1")


def encode_labels(spec: OutputSpec, seqs: Sequence[str], labels: Sequence, row_ids=None,
                  what: str = "labels") -> list[np.ndarray]:
    """Check every label against ``spec`` and convert it; one array per record.

    Global: a scalar (binary/numeric: float; categorical: class index) or, for multi-label, a
    0/1 vector. Local: one value per residue. All problems are reported at once, naming the rows
    (``row_ids[i]`` if given, else ``row i``).

    >>> encode_labels(OutputSpec("local", "categorical", ("0", "1", "2")), ["MKV"], ["021"])[0].tolist()
    [0, 2, 1]
    >>> encode_labels(OutputSpec("global", "binary"), ["MK", "MV"], [1, "x"])
    Traceback (most recent call last):
    ...
    proteinbert.errors.InputError: labels (global-binary): 1 bad row(s): row 1: 'x' is not 0 or 1
    """
    if len(seqs) != len(labels):
        raise InputError(f"{what}: {len(labels)} labels for {len(seqs)} sequences")
    require_label_list(spec)
    index = {label: i for i, label in enumerate(spec.labels)}
    problems: list[str] = []
    out: list[np.ndarray] = []
    for i, (seq, value) in enumerate(zip(seqs, labels)):
        row = row_name(row_ids, i)
        if spec.task == "multilabel" and _is_missing(value):
            value = ""  # an empty cell: a protein with none of the labels (CSV cannot tell it from "missing")
        if _is_missing(value) and spec.task != "multilabel":
            target, problem = None, f"missing label ({value!r})"
        elif spec.level == "global":
            target, problem = _encode_global(spec, index, value)
        else:
            target, problem = _encode_local(spec, index, seq, value)
        if problem is not None:
            problems.append(f"{row}: {problem}")
        out.append(target)
    raise_bad_rows(problems, f"{what} ({spec.name})")
    return out


def _encode_global(spec: OutputSpec, index: dict, value) -> tuple:
    """One protein's target and what is wrong with its label (None if nothing)."""
    if spec.task == "binary":
        parsed = _parse_binary(value)
        return np.float32(parsed or 0), (f"{value!r} is not 0 or 1" if parsed is None else None)
    if spec.task == "numeric":
        parsed = finite_float(value)
        return np.float32(parsed or 0), (f"{value!r} is not a finite number" if parsed is None else None)
    if spec.task == "categorical":
        key = as_label_str(value)
        problem = None if key in index else f"category {key!r} was not seen in training (known: {len(index)})"
        return np.int32(index.get(key, 0)), problem
    try:
        names = _multilabel_names(value)
    except TypeError:
        return None, f"{value!r} is not a list of labels"
    unknown = [x for x in names if x not in index]
    vec = np.zeros(len(spec.labels), np.float32)
    vec[[index[x] for x in names if x in index]] = 1
    return vec, (f"label(s) {unknown[:5]} not seen in training" if unknown else None)


def _encode_local(spec: OutputSpec, index: dict, seq: str, value) -> tuple:
    """One protein's per-residue targets and what is wrong with its labels (None if nothing)."""
    n = len(seq)
    if spec.task == "numeric":
        numbers = _parse_local_numbers(value)
        problem = None
        if len(numbers) != n:
            problem = f"{len(numbers)} per-residue values for a sequence of {n} residues"
        elif any(x is None for x in numbers):
            problem = "per-residue values must be finite numbers"
        return np.array([x or 0 for x in numbers], np.float32), problem
    text = str(value)
    if len(text) != n:
        return None, f"per-residue label has {len(text)} characters, the sequence {n} residues"
    if spec.task == "binary":
        bad = sorted(set(text) - {"0", "1"})
        if bad:
            return None, f"per-residue binary labels must be '0'/'1', found {bad}"
        return (np.frombuffer(text.encode("ascii"), np.uint8) - ord("0")).astype(np.float32), None
    bad = sorted(set(text) - set(index))
    if bad:
        return None, f"per-residue categories {bad} were not seen in training"
    return np.array([index[c] for c in text], np.int32), None
