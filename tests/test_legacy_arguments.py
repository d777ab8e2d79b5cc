"""The 2021 layer honours ``create_model_function`` and optimizer weights, or refuses them clearly."""

import keras
import numpy as np
import pytest

from proteinbert.errors import InputError, WeightsError

TINY_2021 = dict(d_hidden_seq=8, d_hidden_global=16, n_blocks=1, n_heads=2, d_key=4)


def test_create_model_function_is_called_with_the_2021_arguments():
    from proteinbert import PretrainingModelGenerator
    from proteinbert.conv_and_global_attention_model import create_model

    calls = []

    def recording(seq_len, vocab_size, n_annotations, **kwargs):
        calls.append((seq_len, vocab_size, n_annotations, kwargs))
        return create_model(seq_len, vocab_size, n_annotations, **kwargs)

    gen = PretrainingModelGenerator(recording, 5, create_model_kwargs=TINY_2021)
    model = gen.create_model(128, compile=False)
    assert calls == [(128, 26, 5, TINY_2021)]
    assert model.get_layer("narrow-conv-block1").kernel.shape == (9, 8, 8)


def test_create_model_function_must_return_a_backbone():
    from proteinbert import PretrainingModelGenerator

    def not_a_backbone(seq_len, vocab_size, n_annotations, **kwargs):
        return keras.Sequential([keras.layers.Dense(2)])

    gen = PretrainingModelGenerator(not_a_backbone, 5, create_model_kwargs=TINY_2021)
    with pytest.raises(InputError, match="must return a ProteinBertBackbone.*Received: Sequential"):
        gen.create_model(64)


def test_create_model_function_with_a_released_file(fixtures_dir):
    from proteinbert import load_pretrained_model
    from proteinbert.conv_and_global_attention_model import create_model

    default, _ = load_pretrained_model(str(fixtures_dir), "small_lamb.pkl")
    custom, _ = load_pretrained_model(str(fixtures_dir), "small_lamb.pkl", create_model_function=create_model)
    a, b = default.create_model(64, compile=False), custom.create_model(64, compile=False)
    for x, y in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(x, y)


def test_load_optimizer_weights_sets_the_optimizer_state(fixtures_dir):
    from proteinbert import load_pretrained_model
    from proteinbert.weights.pkl import read_pkl
    from proteinbert.weights.released import released_variables

    saved = read_pkl(fixtures_dir / "small_lamb.pkl")
    gen, _ = load_pretrained_model(str(fixtures_dir), "small_lamb.pkl", load_optimizer_weights=True)
    model = gen.create_model(64)
    opt = model.optimizer
    assert int(opt.iterations.numpy()) == int(saved.optimizer_weights[0]) == 16
    variables = released_variables(model)
    n = len(variables)
    for i in (0, n // 2, n - 1):
        idx = opt._get_variable_index(variables[i])
        np.testing.assert_array_equal(opt._momentums[idx].numpy(), saved.optimizer_weights[1 + i])
        np.testing.assert_array_equal(opt._velocities[idx].numpy(), saved.optimizer_weights[1 + n + i])
    # without the flag the optimizer starts afresh, as in 2021
    fresh, _ = load_pretrained_model(str(fixtures_dir), "small_lamb.pkl")
    assert int(fresh.create_model(64).optimizer.iterations.numpy()) == 0


def test_optimizer_weights_that_do_not_fit_are_an_error():
    from proteinbert import PretrainingModelGenerator

    gen = PretrainingModelGenerator(None, 5, create_model_kwargs=TINY_2021,
                                    optimizer_weights=[np.int64(3), np.zeros(2)])
    with pytest.raises(WeightsError, match="optimizer_weights do not fit.*2 arrays"):
        gen.create_model(64)


def test_finetuning_generator_refuses_optimizer_weights():
    from proteinbert import PretrainingModelGenerator
    from proteinbert.finetuning import FinetuningModelGenerator, OutputSpec, OutputType

    gen = PretrainingModelGenerator(None, 5, create_model_kwargs=TINY_2021)
    spec = OutputSpec(OutputType(False, "binary"), [0, 1])
    with pytest.raises(InputError, match="optimizer_weights=.*not supported"):
        FinetuningModelGenerator(gen, spec, optimizer_weights=[np.int64(1)])
    assert FinetuningModelGenerator(gen, spec).optimizer_weights is None
