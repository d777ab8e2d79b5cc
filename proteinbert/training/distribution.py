"""``tf.distribute`` for pretraining: the strategy, which process is the chief, and workers agreeing.

Functions that only read a strategy start no TensorFlow of their own; :func:`make_strategy` and
:func:`any_worker` do.

>>> class Resolver:  # what a multi-worker strategy carries (a two-worker TF_CONFIG, this is worker 1)
...     task_type, task_id = "worker", 1
...     def cluster_spec(self):
...         return type("Spec", (), {"as_dict": lambda self: {"worker": ["a:1", "b:1"]}})()
>>> strategy = type("Strategy", (), {"cluster_resolver": Resolver()})()
>>> is_chief(strategy), n_workers(strategy)
(False, 2)
"""

from __future__ import annotations

import json
import os

from ..errors import InputError


def is_chief(strategy) -> bool:
    """Whether this process writes the run's files: the ``chief`` task, else worker 0, else the only one."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    spec = resolver.cluster_spec().as_dict()
    if "chief" in spec:
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and int(resolver.task_id) == 0


def n_workers(strategy) -> int:
    """The processes (chief and workers) taking part in ``strategy``; 1 without a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return max(1, sum(len(v) for k, v in spec.items() if k in ("chief", "worker")))


def any_worker(strategy, flag: bool) -> bool:
    """True if any worker's ``flag`` is (every worker must call it at the same step)."""
    import tensorflow as tf

    value = strategy.run(lambda: tf.constant(1.0 if flag else 0.0))
    return float(strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)) > 0


def make_strategy(kind: str = "auto", devices=None):
    """A ``tf.distribute`` strategy: ``"auto"`` (multi-worker if ``TF_CONFIG`` names several workers,
    mirrored over all GPUs if there are several, else the default), ``"default"``, ``"mirrored"``
    (``devices`` or all GPUs) or ``"multi-worker"`` (reads ``TF_CONFIG``).

    Create it before any other TensorFlow work (multi-worker needs that).
    """
    import tensorflow as tf

    if kind == "auto":
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
        n = sum(len(cluster.get(k, [])) for k in ("chief", "worker"))
        if n > 1:
            kind = "multi-worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            kind = "mirrored"
        else:
            kind = "default"
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy(devices=list(devices) if devices else None)
    if kind == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise InputError(f"strategy must be auto, default, mirrored or multi-worker. Received: strategy={kind!r}")
