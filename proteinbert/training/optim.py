"""Adam with TensorFlow's fused update: the same arithmetic as ``keras.optimizers.Adam``, fewer ops.

Keras's Adam writes each variable's update as ~15 graph ops (casts, powers, moment updates,
the step). TensorFlow's ``ResourceApplyAdam`` kernel computes the same formula in one op:

    alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
    m += (g - m) * (1 - beta_1);  v += (g**2 - v) * (1 - beta_2)
    w -= alpha * m / (sqrt(v) + epsilon)

On a CPU a fine-tuning step of a small model costs more in per-op dispatch than in arithmetic,
and tracing a step costs Python time per op, so the fused update makes short batches and the
first (traced) step cheaper (``benchmarks/finetune_speed.py``).

Falls back to Keras's own update wherever the fused kernel does not apply: another backend,
``amsgrad``, sparse gradients, or a distribution strategy.

    >>> import numpy as np, keras
    >>> from proteinbert.training.optim import FusedAdam
    >>> w = keras.Variable(np.ones(3, "float32"))
    >>> opt = FusedAdam(learning_rate=0.1)
    >>> opt.apply([np.full(3, 0.5, "float32")], [w])
    >>> [round(float(x), 4) for x in keras.ops.convert_to_numpy(w)]
    [0.9, 0.9, 0.9]
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="proteinbert")
class FusedAdam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` (same arguments, same results) with one fused op per variable."""

    # The one place that overrides Keras internals, on purpose: `_backend_update_step` is the hook
    # that sees all variables of a step at once (the public `update_step` sees one, so the step's
    # scalars would be recomputed per variable), and `_momentums`/`_get_variable_index` are Adam's
    # own slots, which a subclass shares. tests/test_optim.py pins the results to keras's Adam, so
    # a Keras release that changes them fails there, not silently.
    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        import tensorflow as tf

        if keras.backend.backend() != "tensorflow" or self.amsgrad or tf.distribute.has_strategy():
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        # The step's scalars once for all variables (Keras recomputes them per variable).
        step = tf.cast(self.iterations + 1, tf.float32)
        scalars = {}

        def scalars_for(dtype):
            if dtype not in scalars:
                cast = lambda x: tf.cast(x, dtype)  # noqa: E731
                scalars[dtype] = dict(
                    beta1_power=cast(tf.pow(tf.constant(self.beta_1, tf.float32), step)),
                    beta2_power=cast(tf.pow(tf.constant(self.beta_2, tf.float32), step)),
                    lr=cast(learning_rate), beta1=cast(self.beta_1), beta2=cast(self.beta_2),
                    epsilon=cast(self.epsilon))
            return scalars[dtype]

        for grad, variable in zip(grads, trainable_variables):
            var = variable.value if isinstance(variable, keras.Variable) else variable
            if isinstance(grad, tf.IndexedSlices):
                super().update_step(grad, variable, learning_rate)
                continue
            index = self._get_variable_index(variable)
            m, v = self._momentums[index].value, self._velocities[index].value
            tf.raw_ops.ResourceApplyAdam(var=var.handle, m=m.handle, v=v.handle,
                                         grad=tf.cast(grad, var.dtype), use_locking=False,
                                         **scalars_for(var.dtype))
