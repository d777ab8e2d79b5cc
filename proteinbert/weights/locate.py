"""Where the pretrained weights are: one rule for every command and function.

1. an explicit path (a command's ``--weights``, a function's argument), or the name of a preset
   with published weights (``"released"``: the released file in ``~/proteinbert_models/``);
2. else the ``PROTEINBERT_WEIGHTS`` environment variable;
3. else the released file in ``~/proteinbert_models/``.

Nothing is ever downloaded; a missing file raises one error that says where to get it. This module
imports neither Keras nor TensorFlow, so a command can check its weights before they start.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError, WeightsError
from ..presets import PRESET_WEIGHTS, PRESETS, RELEASED_WEIGHTS_FILE

WEIGHTS_ENV_VAR = "PROTEINBERT_WEIGHTS"
DEFAULT_WEIGHTS_DIR = "~/proteinbert_models"
DOWNLOAD_URL = "ftp://ftp.cs.huji.ac.il/users/nadavb/protein_bert/"


#: Weights file formats; a file's format is read from its name.
FORMATS = (".pkl", ".keras", ".weights.h5")


def weights_format(path) -> str:
    name = Path(path).name
    for suffix in (".weights.h5", ".keras", ".pkl"):
        if name.endswith(suffix):
            return suffix
    raise InputError(f"unknown weights format for {path}: expected one of {', '.join(FORMATS)}")


def default_weights_path() -> Path:
    """``~/proteinbert_models/epoch_92400_sample_23500000.pkl`` (``~`` expanded)."""
    return Path(DEFAULT_WEIGHTS_DIR).expanduser() / RELEASED_WEIGHTS_FILE


def _not_found(path: Path, source: str) -> WeightsError:
    return WeightsError(
        f"ProteinBERT weights not found at {path} ({source}). Download the released file "
        f"{RELEASED_WEIGHTS_FILE} (~180 MB) from {DOWNLOAD_URL} and put it in {DEFAULT_WEIGHTS_DIR}/, "
        f"or set {WEIGHTS_ENV_VAR} to its path, or pass the path explicitly (--weights on the command line).")


def resolve_weights(path=None) -> Path:
    """The weights to open: ``path`` if given (a path, or a preset name such as ``"released"``), else
    ``$PROTEINBERT_WEIGHTS``, else the default file.

    The result exists (a file, or a pretraining save directory); the first rule that applies
    decides, so a wrong explicit path or variable is an error rather than a silent fallback.
    Raises :class:`~proteinbert.errors.WeightsError` otherwise.

    >>> import os, pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "w.pkl"
    >>> _ = f.write_bytes(b"")
    >>> resolve_weights(f) == f
    True
    >>> resolve_weights(f.with_name("absent.pkl"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    proteinbert.errors.WeightsError: ProteinBERT weights not found at ...absent.pkl (the path given). ...
    """
    if path is not None and str(path) in PRESETS and not Path(path).exists():
        if str(path) not in PRESET_WEIGHTS:
            raise WeightsError(f"the preset {str(path)!r} has no published weights (presets with weights: "
                               f"{', '.join(PRESET_WEIGHTS)}); ProteinBertBackbone(**preset({str(path)!r})) builds it "
                               "untrained")
        candidate = Path(DEFAULT_WEIGHTS_DIR).expanduser() / PRESET_WEIGHTS[str(path)]
        source = f"the preset {str(path)!r}"
    elif path is not None and str(path) != "":
        candidate, source = Path(path).expanduser(), "the path given"
    elif os.environ.get(WEIGHTS_ENV_VAR):
        candidate, source = Path(os.environ[WEIGHTS_ENV_VAR]).expanduser(), f"${WEIGHTS_ENV_VAR}"
    else:
        candidate, source = default_weights_path(), "the default location"
    if not candidate.exists():
        raise _not_found(candidate, source)
    return candidate


def weights_file(path) -> Path:
    """The file that holds the weights at ``path``: ``path`` itself, or for a pretraining save
    directory (``epoch_E_sample_S/``) its ``epoch_E_sample_S.pkl`` (else its first ``.pkl``).

    >>> import pathlib, tempfile
    >>> save = pathlib.Path(tempfile.mkdtemp()) / "epoch_2_sample_800"
    >>> save.mkdir()
    >>> _ = (save / "epoch_2_sample_800.pkl").write_bytes(b"")
    >>> weights_file(save).name
    'epoch_2_sample_800.pkl'
    """
    path = Path(path)
    if not path.is_dir():
        return path
    candidates = [path / f"{path.name}.pkl"] + sorted(path.glob("*.pkl"))
    found = [c for c in candidates if c.is_file()]
    if not found:
        raise WeightsError(f"{path} is a directory without a .pkl weights file")
    return found[0]
