"""Fine-tuning: output specs, label encoding, padded batches, the head and the staged schedule.

A fine-tuned model is the pretrained backbone's hidden representation (``"all"``: the 2021
concatenation, or ``"last"``) followed by ``Dropout`` and one ``Dense`` layer, for a global
(per-protein) or local (per-residue) output that is binary, categorical, numeric or, for global
outputs, multi-label. One model instance serves every length.

By default (``padding="fixed"``) every batch is padded to the stage's ``seq_len`` (doubled until
the record fits), as the 2021 code did, and predictions are padded the same way: in the global
attention a short protein's residues share the softmax with the ``<PAD>`` positions, so the
padding is part of the function the model learns. ``padding="bucket"`` pads each batch only to
its record's length bucket (see :func:`bucket_length`): faster on short proteins, less accurate.
``virtual_pad_length`` (off by default) makes a bucketed batch attend as if padded to that length
(one far-``<PAD>`` state per sequence, weighted by the number of pads it stands for, see
:class:`~proteinbert.model.GlobalAttention`); the ``<PAD>`` positions next to a sequence, which
the convolutions see, still differ. On the 2021 demo recipe (signal peptide, 3,000 records,
``seq_len`` 128, 8 seeds; ``benchmarks/finetune_accuracy.py``, ``docs/results/finetune_accuracy.md``)
buckets with virtual padding to 512 gave test AUC 0.862 ± 0.038 against 0.911 ± 0.010 for fixed
padding.

>>> spec = OutputSpec.from_labels("global", "categorical", ["b", "a", "b"])
>>> spec.labels, spec.n_outputs, spec.activation
(('a', 'b'), 2, 'softmax')
>>> bucket_length(70 + 2), bucket_length(510 + 2), bucket_length(600 + 2)
(80, 512, 640)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.batching import DEFAULT_PAD_LENGTH
from ..data.batching import bucket_length as _bucket_length
from ..data.batching import fixed_pipeline_options
from ..errors import FormatError, InputError
from ..tokenizer import END_ID, N_ADDED_TOKENS, PAD_ID, START_ID, encode_residues

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
                seen.add(_as_label_str(value))
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

    def to_json(self) -> str:
        return json.dumps({"level": self.level, "task": self.task, "labels": list(self.labels)}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "OutputSpec":
        data = json.loads(text)
        return cls(data["level"], data["task"], tuple(data.get("labels", ())))


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


def _as_label_str(value) -> str:
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
    return [_as_label_str(x) for x in value]


def _require_label_list(spec: OutputSpec) -> None:
    if spec.task in ("categorical", "multilabel") and not spec.labels:
        raise InputError(f"the {spec.name} output has no label list yet: use OutputSpec.from_labels(...)")


def _row_name(row_ids, i: int) -> str:
    return f"row {i}" if row_ids is None else str(row_ids[i])


def _raise_bad_rows(problems: list[str], what: str) -> None:
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


def _parse_float(value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _parse_local_numbers(value, n: int):
    if isinstance(value, str):
        parts = value.replace(",", " ").replace(";", " ").split()
    else:
        parts = list(np.ravel(np.asarray(value, dtype=object)))
    numbers = [_parse_float(x) for x in parts]
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
        seen = {_as_label_str(y) for y in present}
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
    _require_label_list(spec)
    index = {label: i for i, label in enumerate(spec.labels)}
    problems: list[str] = []
    out: list[np.ndarray] = []
    for i, (seq, value) in enumerate(zip(seqs, labels)):
        row = _row_name(row_ids, i)
        if spec.task == "multilabel" and _is_missing(value):
            value = ""  # an empty cell: a protein with none of the labels (CSV cannot tell it from "missing")
        if _is_missing(value) and spec.task != "multilabel":
            problems.append(f"{row}: missing label ({value!r})")
            out.append(None)
            continue
        if spec.level == "global":
            if spec.task == "binary":
                parsed = _parse_binary(value)
                if parsed is None:
                    problems.append(f"{row}: {value!r} is not 0 or 1")
                out.append(np.float32(parsed or 0))
            elif spec.task == "numeric":
                parsed = _parse_float(value)
                if parsed is None:
                    problems.append(f"{row}: {value!r} is not a finite number")
                out.append(np.float32(parsed or 0))
            elif spec.task == "categorical":
                key = _as_label_str(value)
                if key not in index:
                    problems.append(f"{row}: category {key!r} was not seen in training (known: {len(index)})")
                out.append(np.int32(index.get(key, 0)))
            else:
                try:
                    names = _multilabel_names(value)
                except TypeError:
                    problems.append(f"{row}: {value!r} is not a list of labels")
                    out.append(None)
                    continue
                unknown = [x for x in names if x not in index]
                if unknown:
                    problems.append(f"{row}: label(s) {unknown[:5]} not seen in training")
                vec = np.zeros(len(spec.labels), np.float32)
                vec[[index[x] for x in names if x in index]] = 1
                out.append(vec)
        else:
            n = len(seq)
            if spec.task == "numeric":
                numbers = _parse_local_numbers(value, n)
                if len(numbers) != n:
                    problems.append(f"{row}: {len(numbers)} per-residue values for a sequence of {n} residues")
                elif any(x is None for x in numbers):
                    problems.append(f"{row}: per-residue values must be finite numbers")
                out.append(np.array([x or 0 for x in numbers], np.float32))
                continue
            text = str(value)
            if len(text) != n:
                problems.append(f"{row}: per-residue label has {len(text)} characters, the sequence {n} residues")
                out.append(None)
                continue
            if spec.task == "binary":
                bad = sorted(set(text) - {"0", "1"})
                if bad:
                    problems.append(f"{row}: per-residue binary labels must be '0'/'1', found {bad}")
                    out.append(None)
                    continue
                out.append((np.frombuffer(text.encode("ascii"), np.uint8) - ord("0")).astype(np.float32))
            else:
                bad = sorted(set(text) - set(index))
                if bad:
                    problems.append(f"{row}: per-residue categories {bad} were not seen in training")
                    out.append(None)
                    continue
                out.append(np.array([index[c] for c in text], np.int32))
    _raise_bad_rows(problems, f"{what} ({spec.name})")
    return out


# ----------------------------------------------------------------------------------------------
# Length buckets and batches
# ----------------------------------------------------------------------------------------------

def bucket_length(n_tokens: int, min_step: int = 16) -> int:
    """The padded length of a record with ``n_tokens`` tokens (residues + 2) in training.

    Coarser than for embeddings (a quarter of the enclosing power of two, at most ~25 % padding)
    because every new shape costs a training-graph trace. The padded length depends only on the
    record itself, so a prediction never depends on its batch mates.
    """
    n_tokens = int(n_tokens)
    if n_tokens < 1:
        raise InputError(f"n_tokens must be >= 1. Received: n_tokens={n_tokens}")
    return _bucket_length(n_tokens, min_step=min_step, steps_per_octave=4)


def fixed_length(n_tokens: int, seq_len: int) -> int:
    """2021-style padding: ``seq_len``, doubled until the record fits."""
    length = int(seq_len)
    while length < n_tokens:
        length *= 2
    return length


def batch_size_for(padded_len: int, seq_len: int, batch_size: int) -> int:
    """``batch_size`` up to ``seq_len``; beyond, scaled down by the length ratio (at least 1)."""
    if padded_len <= seq_len:
        return batch_size
    return max(1, int(batch_size * seq_len // padded_len))


def length_batches(n_tokens: Sequence[int], seq_len: int, batch_size: int, padding: str = "bucket",
                   rng: np.random.Generator | None = None,
                   token_budget: bool = False) -> list[tuple[np.ndarray, int]]:
    """Group records into ``(indices, padded_len)`` batches.

    ``padding="bucket"`` pads each record to :func:`bucket_length`; ``"fixed"`` pads to
    ``seq_len`` (records that do not fit go to ``2×``, ``4×``… ``seq_len``), as the 2021 code did.
    Records of one padded length form batches of :func:`batch_size_for`; with ``rng`` the records
    within a bucket and the order of batches are shuffled, else records keep their order.

    ``token_budget=True`` (inference) fills shorter batches up to the padded tokens of a full
    ``batch_size × seq_len`` batch instead: a batch of 80-token records holds 6.4× ``batch_size``
    of them at ``seq_len`` 512. The memory stays that of a training batch, and fewer, larger
    batches pay the per-batch costs fewer times. Outputs do not depend on batch mates, so this
    changes the speed only. Training keeps ``batch_size`` (it sets the optimisation).

    >>> [(b.tolist(), L) for b, L in length_batches([10, 70, 12], seq_len=64, batch_size=2)]
    [([0, 2], 16), ([1], 80)]
    >>> [len(b) for b, L in length_batches([10] * 20, seq_len=64, batch_size=2, token_budget=True)]
    [8, 8, 4]
    """
    if padding not in ("bucket", "fixed"):
        raise InputError(f"padding must be 'bucket' or 'fixed'. Received: padding={padding!r}")
    n_tokens = np.asarray(n_tokens, dtype=np.int64)
    if padding == "bucket":
        padded = np.array([bucket_length(n) for n in n_tokens], dtype=np.int64)
    else:
        padded = np.array([fixed_length(n, seq_len) for n in n_tokens], dtype=np.int64)
    batches = []
    for length in np.unique(padded):
        members = np.flatnonzero(padded == length)
        if rng is not None:
            members = rng.permutation(members)
        size = batch_size_for(int(length), seq_len, batch_size)
        if token_budget:
            size = max(size, batch_size * seq_len // int(length))
        for start in range(0, len(members), size):
            batches.append((members[start:start + size], int(length)))
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


@dataclass
class EncodedSet:
    """Records ready for batching: residue ids, converted labels and the output spec.

    ``crop_len`` (residues) crops longer records from their start — only when asked for;
    per-residue labels are cropped with them.
    """

    tokens: list  # residue ids per record (int32, no <START>/<END>)
    labels: list | None  # per record (see encode_labels), or None for prediction only
    spec: OutputSpec
    n_annotations: int

    @classmethod
    def build(cls, spec: OutputSpec, seqs: Sequence[str], labels: Sequence | None, n_annotations: int,
              crop_len: int | None = None, row_ids=None, what: str = "records") -> "EncodedSet":
        if len(seqs) == 0:
            raise InputError(f"{what}: no records (the split is empty)")
        problems = []
        tokens = []
        for i, seq in enumerate(seqs):
            if not isinstance(seq, (str, bytes)) or len(seq) == 0:
                problems.append(f"{_row_name(row_ids, i)}: empty or missing sequence ({seq!r:.40})")
                tokens.append(None)
                continue
            tokens.append(encode_residues(seq))
        _raise_bad_rows(problems, f"{what} (sequences)")
        encoded = None if labels is None else encode_labels(spec, seqs, labels, row_ids=row_ids, what=what)
        if crop_len is not None:
            if crop_len < 1:
                raise InputError(f"crop_len must be >= 1. Received: crop_len={crop_len}")
            n_cropped = sum(len(t) > crop_len for t in tokens)
            if n_cropped:
                logger.info("%s: cropping %d record(s) to %d residues", what, n_cropped, crop_len)
            tokens = [t[:crop_len] for t in tokens]
            if encoded is not None and spec.level == "local":
                encoded = [y[:crop_len] for y in encoded]
        return cls(tokens, encoded, spec, n_annotations)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def n_tokens(self) -> np.ndarray:
        return np.array([len(t) + N_ADDED_TOKENS for t in self.tokens], dtype=np.int64)

    def global_targets(self, indices: np.ndarray) -> np.ndarray:
        """Targets of global outputs: ``(n,)`` class ids or ``(n, n_outputs)`` floats."""
        if self.spec.task == "multilabel":
            return np.stack([self.labels[i] for i in indices]).astype(np.float32)
        if self.spec.task == "categorical":
            return np.array([self.labels[i] for i in indices], dtype=np.int32)
        return np.array([self.labels[i] for i in indices], dtype=np.float32)[:, None]

    def batch(self, indices: np.ndarray, padded_len: int):
        """``(x, y, sample_weight)`` arrays for the records ``indices`` padded to ``padded_len``."""
        n = len(indices)
        x = np.full((n, padded_len), PAD_ID, dtype=np.int32)
        for row, i in enumerate(indices):
            t = self.tokens[i]
            x[row, 0] = START_ID
            x[row, 1:len(t) + 1] = t
            x[row, len(t) + 1] = END_ID
        annotations = np.zeros((n, self.n_annotations), dtype=np.float32)
        if self.labels is None:
            return (x, annotations), None, None
        spec = self.spec
        if spec.level == "global":
            return (x, annotations), self.global_targets(indices), np.ones((n,), dtype=np.float32)
        dtype = np.int32 if spec.task == "categorical" else np.float32
        y = np.zeros((n, padded_len), dtype=dtype)
        weights = np.zeros((n, padded_len), dtype=np.float32)
        for row, i in enumerate(indices):
            values = self.labels[i]
            # Labels sit on positions 1..n, after <START>; everything else has weight 0.
            y[row, 1:len(values) + 1] = values
            weights[row, 1:len(values) + 1] = 1
        if spec.task != "categorical":
            y = y[..., None]
        return (x, annotations), y, weights


def _tf_dataset(data: EncodedSet, batches: list, repeat_rng: np.random.Generator | None = None,
                seq_len: int = 512, batch_size: int = 32, padding: str = "bucket"):
    """A ``tf.data.Dataset`` over ``batches`` with a dynamic length dimension (one trace for all lengths).

    With ``repeat_rng`` every pass over the dataset draws new shuffled batches (as many as
    ``batches`` holds). The dataset declares its number of batches: Keras then ends an epoch
    exactly after one pass and starts the next on a fresh iterator (no ``.repeat()`` and step
    counts to keep in step with the data).
    """
    import tensorflow as tf

    spec = data.spec
    x_sig = (tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None, data.n_annotations), tf.float32))
    if spec.level == "global":
        if spec.task == "categorical":
            y_sig = tf.TensorSpec((None,), tf.int32)
        else:
            y_sig = tf.TensorSpec((None, spec.n_outputs), tf.float32)
        w_sig = tf.TensorSpec((None,), tf.float32)
    else:
        y_sig = (tf.TensorSpec((None, None), tf.int32) if spec.task == "categorical"
                 else tf.TensorSpec((None, None, 1), tf.float32))
        w_sig = tf.TensorSpec((None, None), tf.float32)

    def generate():
        chosen = batches
        if repeat_rng is not None:
            chosen = length_batches(data.n_tokens, seq_len, batch_size, padding, rng=repeat_rng)
        for indices, length in chosen:
            yield data.batch(indices, length)

    dataset = tf.data.Dataset.from_generator(generate, output_signature=(x_sig, y_sig, w_sig))
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(batches)))
    return dataset.with_options(fixed_pipeline_options()).prefetch(2)


# ----------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------

#: Virtual padding is off by default: fixed padding needs none (see the module docstring).
DEFAULT_VIRTUAL_PAD_LENGTH = None


def build_finetuning_model(backbone, spec: OutputSpec, hidden_layers: str = "all", dropout_rate: float = 0.5,
                           seed: int | None = None, virtual_pad_length: int | None = None):
    """The backbone's hidden representation + ``Dropout`` + ``Dense`` head, as one Keras model.

    ``hidden_layers``: ``"all"`` (2021 concatenation), ``"last"`` (final block) or ``"outputs"``
    (the pretraining output probabilities). The representation is a nested model named ``"pretrained"`` (freeze it with
    ``model.get_layer("pretrained").trainable = False``); the head layers are
    ``"head-dropout"`` and ``"head-dense"``. ``virtual_pad_length`` (None: the backbone's own
    setting) rebuilds the backbone with that virtual padding (see
    :func:`~proteinbert.model.with_virtual_padding`); its weights are copied, not shared.

    >>> from proteinbert.model import ProteinBertBackbone
    >>> bb = ProteinBertBackbone(n_annotations=3, d_seq=8, d_global=16, n_blocks=1, n_heads=2, d_key=4)
    >>> m = build_finetuning_model(bb, OutputSpec("local", "categorical", ("0", "1", "2")))
    >>> import numpy as np
    >>> m.predict([np.full((2, 9), 25, "int32"), np.zeros((2, 3), "float32")], verbose=0).shape
    (2, 9, 3)
    """
    import keras

    from ..model import hidden_representation_model, with_virtual_padding

    _require_label_list(spec)
    if virtual_pad_length is not None:
        backbone = with_virtual_padding(backbone, virtual_pad_length)
    if not 0 <= dropout_rate < 1:
        raise InputError(f"dropout_rate must be in [0, 1). Received: dropout_rate={dropout_rate}")
    track = 0 if spec.level == "local" else 1
    if hidden_layers == "outputs":
        # The 2021 generator without a manipulation function: the head sits on the pretraining outputs.
        rep_tensor = backbone.outputs[track]
    else:
        rep_tensor = hidden_representation_model(backbone, hidden_layers).outputs[track]
    pretrained = keras.Model(backbone.inputs, rep_tensor, name="pretrained")
    tokens = keras.Input(shape=(None,), dtype="int32", name="input-seq")
    annotations = keras.Input(shape=(backbone.n_annotations,), dtype="float32", name="input-annotations")
    rep = pretrained([tokens, annotations])
    rep = keras.layers.Dropout(dropout_rate, seed=seed, name="head-dropout")(rep)
    out = keras.layers.Dense(spec.n_outputs, activation=spec.activation, name="head-dense", dtype="float32",
                             kernel_initializer=keras.initializers.GlorotUniform(seed=seed))(rep)
    return keras.Model([tokens, annotations], out, name="proteinbert_finetuned")


def _metrics(spec: OutputSpec):
    import keras

    if spec.task in ("binary", "multilabel"):
        return [keras.metrics.AUC(name="auc", multi_label=spec.task == "multilabel")]
    if spec.task == "categorical":
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    return [keras.metrics.MeanAbsoluteError(name="mae")]


def compile_model(model, spec: OutputSpec, learning_rate: float, run_eagerly: bool = False) -> None:
    """Adam at ``learning_rate``, the loss of ``spec`` and its metric (weighted by the sample weights).

    The Adam is :class:`~proteinbert.training.optim.FusedAdam`: Keras's arithmetic in one op per
    variable, which cuts the traced step's size (tracing the first step of the test model took
    7.9 s instead of 11.5 s).
    """
    from .optim import FusedAdam

    model.compile(optimizer=FusedAdam(learning_rate=learning_rate), loss=spec.loss,
                  weighted_metrics=_metrics(spec), jit_compile=False, run_eagerly=run_eagerly)
    # Create the optimizer's slots now: created inside the first traced step, they make TensorFlow
    # trace the step twice (measured: 9.4 s -> 4.1 s for the first step of the small model).
    model.optimizer.build(model.trainable_variables)


# ----------------------------------------------------------------------------------------------
# The staged schedule
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stage:
    """One stage of fine-tuning.

    ``seq_len``/``batch_size``: the model length of the stage and the batch size up to it (longer
    records get batches scaled down by the length ratio; with fixed padding everything is padded
    to ``seq_len``). ``callbacks``: ReduceLROnPlateau + EarlyStopping (see :class:`FinetuneConfig`).
    """

    name: str
    learning_rate: float
    max_epochs: int
    train_pretrained: bool
    seq_len: int = DEFAULT_PAD_LENGTH
    batch_size: int = 32
    callbacks: bool = True

    def __post_init__(self):
        if not self.learning_rate > 0:
            raise InputError(f"stage {self.name!r}: learning_rate must be > 0. Received: {self.learning_rate}")
        for key in ("max_epochs", "seq_len", "batch_size"):
            value = getattr(self, key)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise InputError(f"stage {self.name!r}: {key} must be a positive int. Received: {key}={value!r}")


#: The 2021 schedule: frozen at 1e-2 → unfrozen at 1e-4 → one epoch at length 1024 at 1e-5.
DEFAULT_STAGES = (
    Stage("frozen", 1e-2, 40, train_pretrained=False, seq_len=DEFAULT_PAD_LENGTH, batch_size=32),
    Stage("unfrozen", 1e-4, 40, train_pretrained=True, seq_len=DEFAULT_PAD_LENGTH, batch_size=32),
    Stage("final", 1e-5, 1, train_pretrained=True, seq_len=1024, batch_size=16),
)


def default_stages(seq_len: int = DEFAULT_PAD_LENGTH, batch_size: int = 32, max_epochs: int = 40, lr: float = 1e-4,
                   frozen: bool = True, lr_frozen: float = 1e-2, n_final_epochs: int = 1,
                   final_seq_len: int = 1024, final_lr: float = 1e-5) -> tuple[Stage, ...]:
    """The 2021 schedule with its knobs (the final batch is scaled down by the length ratio).

    >>> [s.name for s in default_stages(frozen=False, n_final_epochs=0)]
    ['unfrozen']
    """
    stages = []
    if frozen:
        stages.append(Stage("frozen", lr_frozen, max_epochs, False, seq_len, batch_size))
    stages.append(Stage("unfrozen", lr, max_epochs, True, seq_len, batch_size))
    if n_final_epochs > 0:
        final_batch = max(1, int(batch_size * seq_len // final_seq_len))
        stages.append(Stage("final", final_lr, n_final_epochs, True, final_seq_len, final_batch))
    return tuple(stages)


def parse_stage(text: str) -> Stage:
    """A stage from ``"NAME:LR:EPOCHS:frozen|unfrozen[:SEQ_LEN[:BATCH]]"`` (the CLI's ``--stage``).

    >>> parse_stage("warmup:1e-2:3:frozen:128:8")
    Stage(name='warmup', learning_rate=0.01, max_epochs=3, train_pretrained=False, seq_len=128, batch_size=8, callbacks=True)
    """
    parts = text.split(":")
    if not 4 <= len(parts) <= 6 or parts[3] not in ("frozen", "unfrozen"):
        raise InputError(f"a stage is NAME:LR:EPOCHS:frozen|unfrozen[:SEQ_LEN[:BATCH]]. Received: {text!r}")
    try:
        lr, epochs = float(parts[1]), int(parts[2])
        seq_len = int(parts[4]) if len(parts) > 4 else DEFAULT_PAD_LENGTH
        batch = int(parts[5]) if len(parts) > 5 else 32
    except ValueError as exc:
        raise InputError(f"bad number in stage {text!r}: {exc}") from exc
    return Stage(parts[0], lr, epochs, parts[3] == "unfrozen", seq_len, batch)


@dataclass(frozen=True)
class FinetuneConfig:
    """Settings of :func:`finetune` (the architecture lives in the backbone)."""

    stages: tuple = DEFAULT_STAGES
    padding: str = "fixed"  # "fixed" (2021: pad to the stage's seq_len) or "bucket" (faster, less accurate)
    crop_len: int | None = None  # crop records to this many residues (off by default)
    reduce_lr_patience: int = 1
    reduce_lr_factor: float = 0.25
    min_lr: float = 1e-5
    early_stopping_patience: int = 2
    seed: int = 0
    verbose: int = 0
    run_eagerly: bool = False  # skips graph tracing: faster only for a handful of tiny batches (tests)
    # Frozen stages of global outputs train the head on representations computed once per record:
    # the frozen part has no dropout, so each step sees the same numbers as without the cache (the
    # head's dropout still draws per step), at a fraction of the cost.
    cache_frozen_features: bool = True
    # Epoch logs of the whole run (every stage, one global epoch count; see EpochLog). Off by
    # default; each epoch's log line is written either way. An existing CSV, or a directory that
    # already holds event files, is refused unless replace_logs (which deletes those first).
    tensorboard_dir: str | None = None
    csv_log: str | None = None
    replace_logs: bool = False
    # No steps_per_execution > 1 on purpose: Keras runs those steps in a tf.while_loop, and with
    # this model's dynamic shapes TensorFlow 2.21 twice computed corrupted shapes there (a batch
    # dimension of 948,674,742) in fine-tuning padded to 512. One step per call is safe.

    def __post_init__(self):
        object.__setattr__(self, "stages", tuple(self.stages))
        if not self.stages:
            raise InputError("at least one stage is needed. Received: stages=()")
        if self.padding not in ("bucket", "fixed"):
            raise InputError(f"padding must be 'bucket' or 'fixed'. Received: padding={self.padding!r}")
        for key in ("tensorboard_dir", "csv_log"):
            if getattr(self, key) is not None:
                object.__setattr__(self, key, str(getattr(self, key)))  # a Path too; stays JSON-friendly


@dataclass(frozen=True)
class StageResult:
    name: str
    epochs: int
    wall_s: float
    history: dict = field(default_factory=dict)


def _callbacks(config: FinetuneConfig, monitor: str):
    import keras

    return [
        keras.callbacks.ReduceLROnPlateau(monitor=monitor, patience=config.reduce_lr_patience,
                                          factor=config.reduce_lr_factor, min_lr=config.min_lr, verbose=0),
        keras.callbacks.EarlyStopping(monitor=monitor, patience=config.early_stopping_patience,
                                      restore_best_weights=True, verbose=0),
    ]


# ----------------------------------------------------------------------------------------------
# The epoch log: one line per epoch of every stage; TensorBoard events and a CSV on request
# ----------------------------------------------------------------------------------------------

#: The epoch log's columns around the loss and metrics (training ones, then ``val_`` ones).
EPOCH_LOG_FIRST_COLUMNS = ("stage", "epoch", "stage_epoch")
EPOCH_LOG_LAST_COLUMNS = ("lr", "seconds")
_EVENT_FILE_GLOB = "events.out.tfevents.*"


def check_epoch_logs(config: FinetuneConfig) -> None:
    """Refuse epoch-log outputs that would mix with an earlier run's, unless ``config.replace_logs``.

    >>> import tempfile, pathlib
    >>> csv = pathlib.Path(tempfile.mkdtemp()) / "epochs.csv"
    >>> _ = csv.write_text("old")
    >>> check_epoch_logs(FinetuneConfig(csv_log=str(csv)))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    proteinbert.errors.InputError: the epoch log ... exists; allow replacing it (replace_logs=True; ...)
    """
    if config.replace_logs:
        return
    if config.csv_log is not None and Path(config.csv_log).exists():
        raise InputError(f"the epoch log {config.csv_log} exists; allow replacing it (replace_logs=True; "
                         "--overwrite on the command line)")
    if config.tensorboard_dir is not None:
        old = sorted(Path(config.tensorboard_dir).glob(_EVENT_FILE_GLOB))
        if old:
            raise InputError(f"the TensorBoard directory {config.tensorboard_dir} already holds event files "
                             f"({old[0].name}, ...): curves of two runs would mix; choose a new directory "
                             "(TensorBoard shows each subdirectory of its --logdir as a run) or allow replacing "
                             "them (replace_logs=True; --overwrite on the command line)")


class EpochLog:
    """The record of every epoch of a fine-tuning run, all stages in one sequence.

    Epochs are numbered across stages (``epoch``; ``stage_epoch`` within the stage), so curves
    continue from one stage to the next. Each epoch gives one INFO log line (stage, epoch, loss,
    validation metrics, learning rate, seconds) and, when ``config`` asks for them, a row of the
    CSV ``config.csv_log`` (rewritten atomically after every epoch, so it is always complete) and
    TensorBoard scalars at step ``epoch`` in ``config.tensorboard_dir``, with the stage's name as a
    text summary and its 1-based position as the scalar ``stage_index``. ``lr`` is the learning
    rate the epoch ran with (a reduction on plateau shows in the next epoch).

    >>> log = EpochLog(FinetuneConfig())
    >>> log.record("frozen", 1, 1, {"loss": 0.69, "val_loss": 0.68, "val_auc": 0.55}, lr=0.01, seconds=1.5)
    >>> log.record("unfrozen", 2, 1, {"loss": 0.60, "val_loss": 0.61, "val_auc": 0.70}, lr=1e-4, seconds=2.0)
    >>> [(row["stage"], row["epoch"], row["stage_epoch"]) for row in log.rows]
    [('frozen', 1, 1), ('unfrozen', 2, 1)]
    >>> log.columns()
    ['stage', 'epoch', 'stage_epoch', 'loss', 'val_loss', 'val_auc', 'lr', 'seconds']
    """

    def __init__(self, config: FinetuneConfig):
        self.csv_path = None if config.csv_log is None else Path(config.csv_log)
        self.tensorboard_dir = None if config.tensorboard_dir is None else Path(config.tensorboard_dir)
        self.stage_names = [stage.name for stage in config.stages]
        self.rows: list[dict] = []
        self._writer = None

    @classmethod
    def open(cls, config: FinetuneConfig) -> "EpochLog":
        """Check the outputs (:func:`check_epoch_logs`), clear replaced ones and open the event writer."""
        check_epoch_logs(config)
        log = cls(config)
        if log.tensorboard_dir is not None:
            import tensorflow as tf

            log.tensorboard_dir.mkdir(parents=True, exist_ok=True)
            for old in log.tensorboard_dir.glob(_EVENT_FILE_GLOB):  # only with replace_logs (checked above)
                old.unlink()
            log._writer = tf.summary.create_file_writer(str(log.tensorboard_dir))
        return log

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    @property
    def epochs(self) -> int:
        """Epochs recorded so far, all stages together."""
        return len(self.rows)

    def columns(self) -> list[str]:
        """The CSV columns: the first ones, training losses/metrics, validation ones, the last ones."""
        seen: dict = {}
        for row in self.rows:
            seen.update(dict.fromkeys(k for k in row if k not in EPOCH_LOG_FIRST_COLUMNS + EPOCH_LOG_LAST_COLUMNS))
        return [*EPOCH_LOG_FIRST_COLUMNS, *_loss_first(seen), *EPOCH_LOG_LAST_COLUMNS]

    def record(self, stage: str, epoch: int, stage_epoch: int, metrics: dict, lr: float, seconds: float,
               stage_index: int = 0) -> None:
        """Add one epoch: log it, and write it to the CSV and TensorBoard if they are on.

        ``stage_index``: the stage's 1-based position in the schedule (TensorBoard's ``stage_index``).
        """
        # Keras's numbers are float32: their shortest float32 form (0.01, not 0.009999999776482582).
        values = {k: _float32_value(metrics[k]) for k in _loss_first(metrics) if k != "learning_rate"}
        row = {"stage": stage, "epoch": int(epoch), "stage_epoch": int(stage_epoch), **values,
               "lr": _float32_value(lr), "seconds": round(float(seconds), 3)}
        self.rows.append(row)
        shown = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
        logger.info("stage %s epoch %d (%d of the stage): %s, lr=%.3g, %.1f s", stage, epoch, stage_epoch, shown,
                    lr, seconds)
        if self.csv_path is not None:
            self._write_csv()
        if self._writer is not None:
            self._write_events(row, stage_index)

    def _write_csv(self) -> None:
        import csv

        from ..io_utils import atomic_write_path

        columns = self.columns()
        with atomic_write_path(self.csv_path) as tmp:
            with open(tmp, "w", newline="") as handle:
                writer = csv.DictWriter(handle, columns, restval="")
                writer.writeheader()
                writer.writerows(self.rows)

    def _write_events(self, row: dict, stage_index: int) -> None:
        import tensorflow as tf

        from .pretraining import _write_scalar  # the scalar event format, without the tensorboard package

        with self._writer.as_default(step=row["epoch"]):
            for key, value in row.items():
                if key not in EPOCH_LOG_FIRST_COLUMNS:
                    _write_scalar(tf, key, value)
            _write_scalar(tf, "stage_index", stage_index)
            _write_text(tf, "stage", row["stage"])
        self._writer.flush()

    def callback(self, stage_index: int):
        """A Keras callback that records the epochs of ``fit`` for stage ``stage_index`` (0-based) into this log."""
        import keras

        log, stage = self, self.stage_names[stage_index]

        class _StageEpochs(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self._start = time.perf_counter()
                self._lr = float(np.asarray(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

            def on_epoch_end(self, epoch, logs=None):
                log.record(stage, log.epochs + 1, epoch + 1, dict(logs or {}), self._lr,
                           time.perf_counter() - self._start, stage_index + 1)

        return _StageEpochs()


def _loss_first(keys) -> list[str]:
    """Training loss and metrics, then validation ones; the loss first in each (Keras sorts by name).

    >>> _loss_first(["auc", "loss", "val_auc", "val_loss"])
    ['loss', 'auc', 'val_loss', 'val_auc']
    """
    keys = list(keys)
    ordered = []
    for group in ([k for k in keys if not k.startswith("val_")], [k for k in keys if k.startswith("val_")]):
        ordered += sorted(group, key=lambda k: k not in ("loss", "val_loss"))
    return ordered


def _float32_value(value) -> float:
    return float(str(np.float32(value)))


def _write_text(tf, name: str, text: str) -> None:
    """A TensorBoard text event (the text plugin's format) without the ``tensorboard`` package."""
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text", content=b""),
        data_class=summary_pb2.DATA_CLASS_TENSOR,
    )
    tf.summary.write(tag=name, tensor=tf.constant(text), metadata=metadata)


def finetune(model, spec: OutputSpec, train: EncodedSet, valid: EncodedSet | None = None,
             config: FinetuneConfig = FinetuneConfig(), callbacks: Sequence = ()) -> list[StageResult]:
    """Run ``config.stages`` on ``model`` (from :func:`build_finetuning_model`) in place.

    Each stage sets the pretrained part frozen or trainable, compiles Adam at its learning rate
    (a stage with the same trainable layers as the one before keeps its optimizer and only
    changes the learning rate) and fits on length-bucketed batches (reshuffled every epoch from
    ``config.seed``), monitoring the validation loss (the training loss if ``valid`` is None).
    A frozen stage of a global output trains the head on cached representations (see
    ``FinetuneConfig.cache_frozen_features``); ``callbacks`` then see the head-only model.
    Every epoch of every stage goes into one :class:`EpochLog` (a log line each; TensorBoard and
    CSV when ``config`` names them).
    """
    if len(train) == 0:
        raise InputError("the training split is empty")
    if train.labels is None:
        raise InputError("the training records have no labels")
    from ..hardware import guard_onednn_concurrency

    guard_onednn_concurrency()
    epoch_log = EpochLog.open(config)
    try:
        return _run_stages(model, spec, train, valid, config, callbacks, epoch_log)
    finally:
        epoch_log.close()


def _run_stages(model, spec, train, valid, config, callbacks, epoch_log: EpochLog) -> list[StageResult]:
    rng = np.random.default_rng(config.seed)  # batch composition and order; no global random state
    pretrained = model.get_layer("pretrained")
    results = []
    compiled_trainable = None
    for index, stage in enumerate(config.stages):
        stage_callbacks = (epoch_log.callback(index), *callbacks)
        if not stage.train_pretrained and config.cache_frozen_features and spec.level == "global":
            results.append(_fit_head_on_cached_features(model, spec, train, valid, stage, config, rng,
                                                        stage_callbacks))
            compiled_trainable = None
            continue
        if compiled_trainable is stage.train_pretrained:
            # Same trainable variables as the previous stage: keep the compiled (traced) step and
            # the optimizer state, change only the learning rate. Tracing costs seconds per compile.
            model.optimizer.learning_rate.assign(stage.learning_rate)
        else:
            pretrained.trainable = stage.train_pretrained
            compile_model(model, spec, stage.learning_rate, config.run_eagerly)
            compiled_trainable = stage.train_pretrained
        # An epoch's batch count does not depend on the shuffle, so the unshuffled batches give it.
        epoch_batches = length_batches(train.n_tokens, stage.seq_len, stage.batch_size, config.padding)
        train_ds = _tf_dataset(train, epoch_batches, repeat_rng=rng, seq_len=stage.seq_len,
                               batch_size=stage.batch_size, padding=config.padding)
        steps = len(epoch_batches)
        valid_ds = None
        if valid is not None:
            valid_batches = length_batches(valid.n_tokens, stage.seq_len, stage.batch_size, config.padding,
                                           token_budget=True)
            valid_ds = _tf_dataset(valid, valid_batches)
        monitor = "val_loss" if valid is not None else "loss"
        cbs = (_callbacks(config, monitor) if stage.callbacks else []) + list(stage_callbacks)
        logger.info("stage %s: lr %g, up to %d epochs, %s, %d batches/epoch", stage.name, stage.learning_rate,
                    stage.max_epochs, "all layers" if stage.train_pretrained else "pretrained layers frozen", steps)
        start = time.perf_counter()
        history = model.fit(train_ds, validation_data=valid_ds, epochs=stage.max_epochs, callbacks=cbs,
                            verbose=config.verbose, shuffle=False)
        wall = time.perf_counter() - start
        epochs = len(history.history.get("loss", []))
        results.append(StageResult(stage.name, epochs, wall, {k: [float(x) for x in v]
                                                              for k, v in history.history.items()}))
        logger.info("stage %s: %d epochs in %.1f s, final %s", stage.name, epochs, wall,
                    {k: round(v[-1], 4) for k, v in results[-1].history.items()})
    pretrained.trainable = True
    return results


def representations(pretrained, datasets: Sequence[EncodedSet], seq_len: int, batch_size: int, padding: str,
                    run_eagerly: bool = False) -> list[np.ndarray]:
    """Per record set, the ``(n, width)`` outputs of the (global) representation model, in record order.

    One traced function serves every set and length.
    """
    call = _batch_predictor(pretrained, datasets[0].n_annotations, traced=not run_eagerly)
    results = []
    for data in datasets:
        out = None
        for indices, length in length_batches(data.n_tokens, seq_len, batch_size, padding, token_budget=True):
            (x, a), _, _ = data.batch(indices, length)
            y = np.asarray(call(x, a))
            if out is None:
                out = np.zeros((len(data), y.shape[-1]), dtype=np.float32)
            out[indices] = y
        results.append(out)
    return results


def _fit_head_on_cached_features(model, spec, train, valid, stage, config, rng, callbacks) -> "StageResult":
    import keras
    import tensorflow as tf

    start = time.perf_counter()
    pretrained = model.get_layer("pretrained")
    pretrained.trainable = False
    features, *vfeat = representations(pretrained, [train] + ([valid] if valid is not None else []),
                                       stage.seq_len, stage.batch_size, config.padding, config.run_eagerly)
    targets = train.global_targets(np.arange(len(train)))
    inp = keras.Input(shape=(features.shape[1],), dtype="float32")
    head = keras.Model(inp, model.get_layer("head-dense")(model.get_layer("head-dropout")(inp)), name="head")
    compile_model(head, spec, stage.learning_rate, config.run_eagerly)

    def batches():
        # The same batch composition as the uncached stage would draw (lengths only set batch sizes).
        for idx, _ in length_batches(train.n_tokens, stage.seq_len, stage.batch_size, config.padding, rng=rng):
            yield features[idx], targets[idx]

    y_shape = (None,) if spec.task == "categorical" else (None, spec.n_outputs)
    y_dtype = tf.int32 if spec.task == "categorical" else tf.float32
    signature = (tf.TensorSpec((None, features.shape[1]), tf.float32), tf.TensorSpec(y_shape, y_dtype))
    options = fixed_pipeline_options()
    steps = len(length_batches(train.n_tokens, stage.seq_len, stage.batch_size, config.padding))
    train_ds = tf.data.Dataset.from_generator(batches, output_signature=signature)
    train_ds = train_ds.apply(tf.data.experimental.assert_cardinality(steps)).with_options(options)
    valid_data = None
    if valid is not None:
        # Our own dataset rather than arrays: Keras would make an autotuned one.
        valid_data = tf.data.Dataset.from_tensor_slices((vfeat[0], valid.global_targets(np.arange(len(valid)))))
        # Batch size does not change validation numbers; a few large batches cost fewer steps.
        valid_data = valid_data.batch(max(stage.batch_size, 1024)).with_options(options)
    monitor = "val_loss" if valid is not None else "loss"
    cbs = (_callbacks(config, monitor) if stage.callbacks else []) + list(callbacks)
    logger.info("stage %s: lr %g, up to %d epochs, head only on cached representations (%d x %d)", stage.name,
                stage.learning_rate, stage.max_epochs, *features.shape)
    history = head.fit(train_ds, validation_data=valid_data, batch_size=stage.batch_size,
                       epochs=stage.max_epochs, callbacks=cbs, verbose=config.verbose, shuffle=False)
    wall = time.perf_counter() - start
    hist = {k: [float(x) for x in v] for k, v in history.history.items()}
    logger.info("stage %s: %d epochs in %.1f s, final %s", stage.name, len(hist.get("loss", [])), wall,
                {k: round(v[-1], 4) for k, v in hist.items()})
    return StageResult(stage.name, len(hist.get("loss", [])), wall, hist)


#: Inference traces the model once from this many batches on (below it, eager calls are cheaper).
_TRACE_FROM_BATCHES = 8


def _worth_tracing(n_batches: int) -> bool:
    return n_batches >= _TRACE_FROM_BATCHES


def _batch_predictor(model, n_annotations: int, traced: bool):
    """``f(tokens, annotations) -> outputs`` of ``model`` in inference mode, traced or eager.

    Eagerly every op pays Python dispatch on every batch; traced once (a few seconds), a batch
    costs its arithmetic. The signature has dynamic dimensions: one trace serves every length.
    """
    import tensorflow as tf

    def call(tokens, annotations):
        return model([tokens, annotations], training=False)

    if not traced:
        return call
    return tf.function(call, reduce_retracing=True,
                       input_signature=[tf.TensorSpec((None, None), tf.int32),
                                        tf.TensorSpec((None, n_annotations), tf.float32)])


def predict(model, data: EncodedSet, seq_len: int = 512, batch_size: int = 32, padding: str = "fixed") -> list:
    """Predictions in record order: per record an array (global: ``(n_outputs,)``; local: ``(n, n_outputs)``).

    Records are padded as in training and batched up to ``batch_size × seq_len`` padded tokens
    (see :func:`length_batches`); dropout is off.
    """
    batches = length_batches(data.n_tokens, seq_len, batch_size, padding, token_budget=True)
    call = _batch_predictor(model, data.n_annotations, traced=_worth_tracing(len(batches)))
    out: list = [None] * len(data)
    for indices, length in batches:
        (tokens, annotations), _, _ = data.batch(indices, length)
        y = np.asarray(call(tokens, annotations))
        for row, i in enumerate(indices):
            if data.spec.level == "global":
                out[i] = y[row]
            else:
                out[i] = y[row, 1:len(data.tokens[i]) + 1]
    return out


# ----------------------------------------------------------------------------------------------
# A fine-tuned model with its spec: predict, save, load
# ----------------------------------------------------------------------------------------------

MODEL_FILE = "model.keras"
SPEC_FILE = "output_spec.json"
LABELS_FILE = "labels.txt"
META_FILE = "finetuning.json"


@dataclass
class FinetunedModel:
    """A Keras fine-tuned model, its :class:`OutputSpec` and metadata; saves as a directory.

    The directory holds ``model.keras``, ``output_spec.json``, ``labels.txt`` (one label a line)
    and ``finetuning.json`` (backbone architecture, hidden layers, stage results).
    """

    model: object
    spec: OutputSpec
    metadata: dict = field(default_factory=dict)

    @property
    def n_annotations(self) -> int:
        return int(self.model.inputs[1].shape[-1])

    def encode(self, seqs, labels=None, crop_len=None, row_ids=None, what="records") -> EncodedSet:
        return EncodedSet.build(self.spec, seqs, labels, self.n_annotations, crop_len=crop_len,
                                row_ids=row_ids, what=what)

    @property
    def training_padding(self) -> tuple[str, int]:
        """``(padding, seq_len)`` of training (metadata; else fixed padding to 512): predictions' default."""
        config = self.metadata.get("config") or {}
        stages = config.get("stages") or [{}]
        return config.get("padding", "fixed"), int(stages[0].get("seq_len", 512))

    def predict(self, seqs: Sequence[str], crop_len: int | None = None, padding: str | None = None,
                seq_len: int | None = None, batch_size: int = 32) -> list:
        """Per record: global ``(n_outputs,)`` probabilities/values, local ``(n, n_outputs)``.

        ``padding``/``seq_len`` default to those of training (:attr:`training_padding`).
        """
        trained_padding, trained_len = self.training_padding
        return predict(self.model, self.encode(seqs, crop_len=crop_len), seq_len or trained_len, batch_size,
                       padding or trained_padding)

    def save(self, path, overwrite: bool = False, extra_csv: dict | None = None) -> Path:
        """Write the directory atomically (a temporary directory renamed on success).

        ``extra_csv`` maps file names to DataFrames written alongside (e.g. test metrics).
        """
        from ..io_utils import atomic_write_path

        path = Path(path)
        if path.exists() and not overwrite:
            raise InputError(f"{path} exists; pass overwrite=True to replace it")
        if path.exists() and not path.is_dir():
            raise InputError(f"{path} exists and is not a directory")
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            import shutil

            shutil.rmtree(old, ignore_errors=True)
        with atomic_write_path(path, suffix="") as tmp:
            tmp = Path(tmp)
            tmp.mkdir()
            self.model.save(tmp / MODEL_FILE)
            (tmp / SPEC_FILE).write_text(self.spec.to_json())
            (tmp / LABELS_FILE).write_text("".join(f"{x}\n" for x in self.spec.labels))
            (tmp / META_FILE).write_text(json.dumps(self.metadata, indent=1, default=str))
            for name, frame in (extra_csv or {}).items():
                frame.to_csv(tmp / name, index=False)
            if old is not None:
                path.rename(old)
        if old is not None:
            import shutil

            shutil.rmtree(old, ignore_errors=True)
        return path

    @classmethod
    def load(cls, path) -> "FinetunedModel":
        from .. import model as _registers_layers  # noqa: F401  (custom layers for deserialisation)

        path = Path(path)
        for name in (MODEL_FILE, SPEC_FILE):
            if not (path / name).is_file():
                raise InputError(f"{path} is not a fine-tuned model directory: {name} is missing")
        try:
            spec = OutputSpec.from_json((path / SPEC_FILE).read_text())
        except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
            raise FormatError(f"not a valid output spec ({type(exc).__name__}: {exc})", path / SPEC_FILE) from exc
        labels_path = path / LABELS_FILE
        if labels_path.is_file():
            labels = tuple(x for x in labels_path.read_text().split("\n") if x != "")
            if labels != spec.labels:
                raise InputError(f"{labels_path} does not match {path / SPEC_FILE}")
        metadata = {}
        if (path / META_FILE).is_file():
            try:
                metadata = json.loads((path / META_FILE).read_text())
            except ValueError as exc:
                raise FormatError(f"not valid JSON ({exc})", path / META_FILE) from exc
        from ..weights.convert import open_keras_model

        model = open_keras_model(path / MODEL_FILE)
        return cls(model, spec, metadata)


def finetune_from_backbone(backbone, spec: OutputSpec, train_seqs, train_labels, valid_seqs=None,
                           valid_labels=None, config: FinetuneConfig = FinetuneConfig(),
                           hidden_layers: str = "all", dropout_rate: float = 0.5,
                           train_row_ids=None, valid_row_ids=None, callbacks: Sequence = (),
                           virtual_pad_length: int | None = DEFAULT_VIRTUAL_PAD_LENGTH) -> FinetunedModel:
    """Validate, encode, build the head on ``backbone`` and run the schedule; returns the model.

    ``spec`` may lack its label list (categorical/multi-label): it is then taken from the
    training labels. ``virtual_pad_length`` (default None: the backbone as it is) makes every batch
    attend as if padded to that length (module docstring), for ``padding="bucket"``; it changes
    nothing for batches at least that long.
    """
    if virtual_pad_length is not None:
        from ..model import with_virtual_padding

        backbone = with_virtual_padding(backbone, virtual_pad_length)
    if len(train_seqs) == 0:
        raise InputError("the training split is empty")
    if spec.task in ("categorical", "multilabel") and not spec.labels:
        spec = OutputSpec.from_labels(spec.level, spec.task, train_labels)
    A = backbone.n_annotations
    require_both_classes(spec, train_labels)
    train = EncodedSet.build(spec, train_seqs, train_labels, A, config.crop_len, train_row_ids, "training set")
    valid = None
    if valid_seqs is not None:
        if len(valid_seqs) == 0:
            raise InputError("the validation split is empty")
        valid = EncodedSet.build(spec, valid_seqs, valid_labels, A, config.crop_len, valid_row_ids,
                                 "validation set")
    model = build_finetuning_model(backbone, spec, hidden_layers, dropout_rate, seed=config.seed)
    results = finetune(model, spec, train, valid, config, callbacks=callbacks)
    metadata = {
        "backbone_architecture": dict(backbone.architecture),
        "hidden_layers": hidden_layers,
        "dropout_rate": dropout_rate,
        "config": dataclasses.asdict(config),
        "stages": [dataclasses.asdict(r) for r in results],
    }
    return FinetunedModel(model, spec, metadata)


