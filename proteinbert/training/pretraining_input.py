"""The ``tf.data`` input of pretraining: the numpy batch stream of
:mod:`proteinbert.data.pretraining_batches`, cut per replica, prefetched, and handed to a strategy.

TensorFlow is imported inside the functions, so importing this module starts none.
"""

from __future__ import annotations

import logging
import threading
from typing import Sequence

from ..data.batching import fixed_pipeline_options
from ..data.pretraining_batches import PretrainingBatches, split_for_replicas

logger = logging.getLogger(__name__)


def element_signature(n_annotations: int):
    """``tf.TensorSpec``s of one replica's part (lengths and batch sizes vary by episode)."""
    import tensorflow as tf

    return {
        "tokens": tf.TensorSpec((None, None), tf.int32),
        "annotations": tf.TensorSpec((None, n_annotations), tf.float32),
        "token_targets": tf.TensorSpec((None, None), tf.int32),
        "annotation_targets": tf.TensorSpec((None, n_annotations), tf.float32),
        "token_weights": tf.TensorSpec((None, None), tf.float32),
        "annotation_weights": tf.TensorSpec((None,), tf.float32),
        "n_tokens": tf.TensorSpec((None,), tf.float32),
        "n_annotated": tf.TensorSpec((None,), tf.float32),
        "step": tf.TensorSpec((None,), tf.int64),
    }


def replica_dataset(stream: PretrainingBatches, n_replicas: int = 1, replica_ids: Sequence[int] = (0,),
                    prefetch: int = 4, stop: threading.Event | None = None):
    """A prefetching ``tf.data.Dataset`` of this worker's replica parts, in replica order per step.

    With one replica it yields whole global batches. Under ``distribute_datasets_from_function``
    a worker holding replicas ``replica_ids`` gets consecutive elements, one per local replica.
    The dataset ends once ``stop`` is set; see :func:`close_iterator`.
    """
    import tensorflow as tf

    replica_ids = tuple(int(r) for r in replica_ids)

    def generate():
        while stop is None or not stop.is_set():
            parts = split_for_replicas(stream.next_batch(), n_replicas)
            for r in replica_ids:
                yield parts[r]

    ds = tf.data.Dataset.from_generator(generate, output_signature=element_signature(stream.n_annotations))
    options = fixed_pipeline_options()
    # Every worker makes the same global batches and keeps its own share: no file sharding.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    options.deterministic = True
    return ds.with_options(options).prefetch(prefetch)


def distributed_iterator(strategy, stream: PretrainingBatches, n_replicas: int, n_workers: int, prefetch: int,
                         stop: threading.Event):
    """An iterator over the batches of ``stream`` as ``strategy``'s replicas take them (a plain
    iterator on one device); close it with :func:`close_iterator` and ``stop``."""
    if n_replicas == 1 and n_workers == 1:
        return iter(replica_dataset(stream, 1, (0,), prefetch, stop))

    def dataset_fn(ctx):
        local = n_replicas // ctx.num_input_pipelines
        first = ctx.input_pipeline_id * local
        return replica_dataset(stream, n_replicas, range(first, first + local), prefetch, stop)

    return iter(strategy.distribute_datasets_from_function(dataset_fn))


def close_iterator(iterator, stop: threading.Event, max_elements: int = 10_000) -> None:
    """End a pipeline made with ``stop``: set it, then drain what was prefetched.

    Dropping an iterator of a ``from_generator`` dataset while its generator runs can deadlock
    (the destructor waits for the generator thread, which waits for the GIL the destructor holds);
    once drained, nothing runs and the iterator can go.
    """
    import tensorflow as tf

    stop.set()
    for _ in range(max_elements):
        try:
            next(iterator)
        except (StopIteration, tf.errors.OutOfRangeError):
            return
    logger.warning("the batch pipeline did not end after %d elements", max_elements)
