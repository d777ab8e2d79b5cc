"""One pretraining step on every replica: the losses, their gradients, LAMB, and the accuracy
counts of :mod:`.pretraining_metrics`.

Losses (per global batch):

* token loss: sparse categorical cross-entropy, averaged over the non-``<PAD>`` positions of the
  global batch (the 2021 Keras loss divided the same sum by batch × padded length instead);
* annotation loss: binary cross-entropy averaged over the GO slots, then over the proteins that
  carry annotation weight (annotated, not in the test set);
* total = token loss + 1 × annotation loss.

Each replica divides its sums by the global normalisers carried in its part of the batch
(:func:`proteinbert.data.pretraining_batches.split_for_replicas`), so the replicas' gradients,
summed by the optimizer, are exactly the single-device gradient.
"""

from __future__ import annotations

from .pretraining_metrics import accuracy_counts


def build_train_step(model, optimizer, strategy, element_spec, jit_compile: bool = False):
    """A ``tf.function`` taking one distributed batch and returning, summed over the replicas,
    ``[total loss, token loss, annotation loss, *accuracy counts]``."""
    import keras
    import tensorflow as tf

    ops = keras.ops

    def replica_step(x):
        with tf.GradientTape() as tape:
            seq_probs, annot_probs = model([x["tokens"], x["annotations"]], training=True)
            ce = keras.losses.sparse_categorical_crossentropy(x["token_targets"], seq_probs)
            seq_loss = tf.reduce_sum(ce * x["token_weights"]) / x["n_tokens"][0]
            bce = keras.losses.binary_crossentropy(x["annotation_targets"], annot_probs)
            annot_loss = tf.reduce_sum(bce * x["annotation_weights"]) / x["n_annotated"][0]
            loss = seq_loss + annot_loss
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        pred = tf.argmax(seq_probs, axis=-1, output_type=tf.int32)
        counts = accuracy_counts(pred, x["tokens"], x["token_targets"], x["token_weights"], xp=ops)
        return tf.concat([tf.stack([loss, seq_loss, annot_loss]), tf.cast(counts, loss.dtype)], axis=0)

    # One trace for every episode: the signature leaves batch and length open.
    @tf.function(jit_compile=jit_compile or None, input_signature=[element_spec])
    def train_step(x):
        per_replica = strategy.run(replica_step, args=(x,))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return train_step
