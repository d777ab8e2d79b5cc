import numpy as np
import pytest
import keras
import tensorflow as tf

from proteinbert.training.optim import FusedAdam


def _train(optimizer, init, grads):
    weights = [keras.Variable(x) for x in init]
    optimizer.build(weights)

    @tf.function
    def step(g):
        optimizer.apply(g, weights)

    for g in grads:
        step(g)
    return [w.numpy() for w in weights], optimizer


@pytest.mark.parametrize("kwargs", [dict(learning_rate=1e-2), dict(learning_rate=3e-3, beta_1=0.8, epsilon=1e-3),
                                    dict(learning_rate=1e-2, amsgrad=True)])
def test_fused_adam_matches_keras_adam(kwargs):
    rng = np.random.default_rng(0)
    init = [rng.normal(size=s).astype("float32") for s in [(5, 3), (3,), (2, 4, 7)]]
    grads = [[rng.normal(size=x.shape).astype("float32") for x in init] for _ in range(25)]
    expected, _ = _train(keras.optimizers.Adam(**kwargs), init, grads)
    got, fused = _train(FusedAdam(**kwargs), init, grads)
    assert int(fused.iterations.numpy()) == 25
    for e, g, x in zip(expected, got, init):
        assert not np.allclose(g, x, atol=1e-3)  # the weights moved
        np.testing.assert_allclose(g, e, rtol=0, atol=2e-6)


def test_fused_adam_learning_rate_variable_and_config():
    opt = FusedAdam(learning_rate=0.1, beta_2=0.99)
    w = keras.Variable(np.ones(3, "float32"))
    opt.build([w])
    opt.learning_rate.assign(0.01)  # how the fine-tuning stages change it
    opt.apply([np.full(3, 2.0, "float32")], [w])
    np.testing.assert_allclose(w.numpy(), 0.99, atol=1e-6)  # the first Adam step moves by lr
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(clone) is FusedAdam and clone.beta_2 == 0.99
