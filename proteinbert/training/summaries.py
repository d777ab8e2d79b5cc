"""TensorBoard events written with TensorFlow alone (``tf.summary.scalar``/``text`` need the
``tensorboard`` package): pretraining and fine-tuning logs use these."""

from __future__ import annotations


def write_scalar(tf, name: str, value) -> None:
    """A TensorBoard scalar event without the ``tensorboard`` package (``tf.summary.scalar`` needs it).

    The metadata is what TensorBoard's own scalar summary writes (plugin "scalars", version 0).
    """
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars", content=b""),
        data_class=summary_pb2.DATA_CLASS_SCALAR,
    )
    tf.summary.write(tag=name, tensor=tf.constant(float(value), tf.float32), metadata=metadata)


def write_text(tf, name: str, text: str) -> None:
    """A TensorBoard text event (the text plugin's format) without the ``tensorboard`` package."""
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text", content=b""),
        data_class=summary_pb2.DATA_CLASS_TENSOR,
    )
    tf.summary.write(tag=name, tensor=tf.constant(text), metadata=metadata)
