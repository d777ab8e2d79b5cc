"""A fine-tuned model.keras opens with plain keras.saving.load_model after `import proteinbert`, and
importing proteinbert changes nothing else in the process."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from proteinbert.model import ProteinBertBackbone
from proteinbert.training.finetuning import MODEL_FILE, FinetuneConfig, OutputSpec, Stage, finetune_from_backbone
from backbone_harness import MICRO

SEQS = ["MKVLAAGIVGLLLA", "MSTNPKPQRKTKRNTNRRPQDVKFPGG", "MAAAKKLLLVVV", "MKKLLPTAAAGLLLLAAQPAMA"] * 4
LABELS = [1, 0, 1, 0] * 4

_LOAD_AND_PREDICT = """
import json, sys
{imports}
import numpy as np
model = keras.saving.load_model(sys.argv[1])
tokens, annotations = (np.asarray(x) for x in json.loads(sys.argv[2]))
print("RESULT", type(model.optimizer).__name__, json.dumps(np.asarray(model(
    [tokens.astype("int32"), annotations.astype("float32")], training=False)).tolist()))
"""


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    backbone = ProteinBertBackbone(n_annotations=4, **MICRO)
    config = FinetuneConfig(stages=(Stage("only", 1e-2, 1, True, 64, 16),), run_eagerly=True)
    model = finetune_from_backbone(backbone, OutputSpec("global", "binary"), SEQS, LABELS, config=config)
    path = model.save(tmp_path_factory.mktemp("ft") / "model")
    encoded = model.encode(SEQS[:3])
    (tokens, annotations), _, _ = encoded.batch([0, 1, 2], 32)
    expected = np.asarray(model.model([tokens, annotations], training=False))
    return path / MODEL_FILE, (tokens.tolist(), annotations.tolist()), expected


@pytest.mark.parametrize("imports", ["import proteinbert, keras", "import keras, proteinbert",
                                     "import tensorflow; import proteinbert; import keras"])
def test_plain_keras_load_model_after_import_proteinbert(finetuned, imports):
    path, inputs, expected = finetuned
    code = _LOAD_AND_PREDICT.format(imports=imports)
    done = subprocess.run([sys.executable, "-c", code, str(path), json.dumps(inputs)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    _, optimizer, values = line.split(" ", 2)
    assert optimizer == "FusedAdam"  # compiled state included: the fused Adam is registered too
    np.testing.assert_allclose(np.asarray(json.loads(values)), expected, rtol=1e-5, atol=1e-6)


def test_import_changes_nothing_and_cheap_imports_stay_cheap():
    code = """
import os, sys
env, path = dict(os.environ), list(sys.meta_path)
import proteinbert, proteinbert.tokenizer
added = [type(f).__name__ for f in sys.meta_path if f not in path]
print(dict(os.environ) == env, "tensorflow" in sys.modules, "keras" in sys.modules, added)
"""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPU_ALLOCATOR_USE_BFC", "MALLOC_TOP_PAD_")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    # Only the watcher that registers the Keras classes once Keras is imported.
    assert done.stdout.strip() == "True False False ['ImportHook']", done.stderr


def test_every_class_is_registered_when_proteinbert_imports_keras_itself():
    # Keras's first import then happens half-way through proteinbert.model's own.
    code = """
import proteinbert.model, keras
names = ("GlobalAttention", "ProteinBertBackbone", "FinetunedProteinBert", "FusedAdam")
print([keras.saving.get_registered_object("proteinbert>" + n) is not None for n in names])
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.split("\n")[-2] == "[True, True, True, True]", done.stderr[-3000:]
    assert "could not register" not in done.stderr, done.stderr[-3000:]


def test_the_keras_watcher_removes_itself():
    code = """
import sys
import proteinbert
import keras
from proteinbert._import_hooks import ImportHook
print(any(isinstance(f, ImportHook) for f in sys.meta_path), keras.saving.get_registered_object("proteinbert>GlobalAttention") is not None)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.split()[-2:] == ["False", "True"], done.stderr[-3000:]
