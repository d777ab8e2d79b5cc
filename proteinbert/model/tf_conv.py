"""A TensorFlow 1-D "same" convolution with a faster gradient (a speed path for the TF backend).

TensorFlow's CPU gradients of a convolution (``Conv2DBackpropInput`` / ``Conv2DBackpropFilter``,
after the space-to-batch that dilation needs) took 3-7x the forward pass on our test CPU. With
stride 1, an odd kernel and "same" padding both gradients have cheaper forms:

* with respect to the input: the same convolution of the upstream gradient with the kernel
  reversed over taps and its channel axes swapped (the transposed convolution);
* with respect to the kernel: one matrix product of the input's ``taps`` shifted copies
  (``(B*L, taps*C_in)``) with the upstream gradient (``(B*L, C_out)``).

Measured on 32 x 80 x 128 channels, 9 taps (``benchmarks/conv_gradient.py``): forward + backward
25-28 ms -> 16 ms (dilation 1) and 50-52 ms -> 16-18 ms (dilation 5); at 32 x 512, 150-160 ms
-> 97-103 ms (dilation 5), and about the same at dilation 1. The forward pass is TensorFlow's own
op, unchanged. Used by :class:`~proteinbert.model.layers.ColumnConv1D` on the TensorFlow backend.
"""

from __future__ import annotations


def same_conv1d(x, kernel, dilation: int):
    """``tf.nn.convolution(x, kernel, padding="SAME", dilations=dilation)`` (NWC), custom gradient.

    ``kernel`` is ``(taps, C_in, C_out)`` with an odd number of taps.

    >>> import numpy as np, tensorflow as tf
    >>> x, k = tf.ones((1, 6, 2)), tf.ones((3, 2, 4))
    >>> with tf.GradientTape() as tape:
    ...     tape.watch(x)
    ...     y = same_conv1d(x, k, 2)
    >>> y.numpy()[0, :, 0].tolist()  # taps that fall outside the sequence see zeros
    [4.0, 4.0, 6.0, 6.0, 4.0, 4.0]
    >>> tape.gradient(y, x).numpy()[0, :, 0].tolist()
    [8.0, 8.0, 12.0, 12.0, 8.0, 8.0]
    """
    import tensorflow as tf

    taps = int(kernel.shape[0])
    if taps % 2 != 1:
        raise ValueError(f"same_conv1d needs an odd number of taps. Received: kernel shape {tuple(kernel.shape)}")
    half = (taps - 1) // 2 * dilation

    @tf.custom_gradient
    def conv(x, kernel):
        def grad(upstream):
            c_in, c_out = int(kernel.shape[1]), int(kernel.shape[2])
            flipped = tf.transpose(tf.reverse(kernel, [0]), (0, 2, 1))
            grad_x = tf.nn.convolution(upstream, flipped, padding="SAME", dilations=dilation)
            length = tf.shape(x)[1]
            padded = tf.pad(x, [[0, 0], [half, half], [0, 0]])
            shifted = tf.concat([padded[:, j * dilation:j * dilation + length] for j in range(taps)], axis=-1)
            grad_kernel = tf.matmul(tf.reshape(shifted, (-1, taps * c_in)), tf.reshape(upstream, (-1, c_out)),
                                    transpose_a=True)
            return grad_x, tf.reshape(grad_kernel, (taps, c_in, c_out))

        return tf.nn.convolution(x, kernel, padding="SAME", dilations=dilation), grad

    return conv(x, kernel)
