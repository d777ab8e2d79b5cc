"""The ProteinBERT network as one Keras 3 functional model with a dynamic length dimension.

Layer names, weight names and shapes follow the released model (a compatibility contract,
see ``released_weight_layout``); all weights are length-independent, so one instance serves
every sequence length.
"""

from __future__ import annotations

import keras

from ..errors import InputError
from ..presets import PRESETS
from ..tokenizer import VOCAB_SIZE
from .block import ProteinBertBlock
from .layers import PaddingMask, PadTokens, gelu

#: The released model's architecture (``n_annotations`` 8943); see :mod:`.presets`.
RELEASED_CONFIG = dict(PRESETS["released"])


def _check_positive(**values):
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"{name} must be a positive int. Received: {name}={value!r}")


def _check_architecture(sizes: dict, attention_mask: bool, virtual_pad_length: int | None) -> None:
    _check_positive(**sizes)
    if sizes["d_global"] % sizes["n_heads"]:
        raise InputError(
            f"n_heads must divide d_global. Received: n_heads={sizes['n_heads']}, d_global={sizes['d_global']}"
        )
    if virtual_pad_length is not None:
        _check_positive(virtual_pad_length=virtual_pad_length)
        if attention_mask:
            raise InputError("virtual_pad_length needs <PAD> positions in the attention; it cannot be "
                             f"combined with attention_mask. Received: virtual_pad_length={virtual_pad_length}, "
                             "attention_mask=True")


def _apply_block(block: ProteinBertBlock, local, pad, glob, mask):
    """One block on the functional graph: ``(local, pad, glob)`` after its local and global updates
    (``pad``: the virtual ``<PAD>`` state, or None). The calls keep the 2021 order."""
    g2s = block.global_to_seq(glob)
    if pad is None:
        narrow, wide = block.narrow_conv(local), block.wide_conv(local)
    else:
        (narrow, narrow_pad), (wide, wide_pad) = block.narrow_conv([local, pad]), block.wide_conv([local, pad])
    _, local = block.local_update(local, g2s, narrow, wide)
    if pad is not None:
        _, pad = block.local_update(pad, g2s, narrow_pad, wide_pad)
    attended = block.attention([glob, local] if pad is None else [glob, local, pad], padding_mask=mask)
    _, glob = block.global_update(glob, attended)
    return local, pad, glob


@keras.saving.register_keras_serializable(package="proteinbert")
class ProteinBertBackbone(keras.Model):
    """ProteinBERT: a convolutional local track and a dense global track joined by global attention.

    Inputs: ``[tokens (batch, L) int32, annotations (batch, n_annotations) float32]``.
    Outputs: ``[token probabilities (batch, L, vocab_size), annotation probabilities (batch, n_annotations)]``.

    ``attention_mask=True`` keeps ``<PAD>`` positions out of the global attention (the released
    weights were trained without it; leave it off for parity). ``dtype`` takes a Keras dtype
    policy such as ``"mixed_bfloat16"``; the two output layers always compute in float32.

    ``virtual_pad_length``: the global attention behaves as if every sequence were padded to this
    many tokens, as the 2021 code padded every batch to the model length, while the network only
    computes the batch's own length (see :class:`GlobalAttention`). The state of a ``<PAD>`` far
    from the sequence is computed alongside, one position per sequence. Adds no weights; a batch
    at least this long gives exactly the plain model's numbers. Cannot be combined with
    ``attention_mask``.

    >>> import numpy as np
    >>> model = ProteinBertBackbone(n_annotations=5, d_seq=8, d_global=16, n_blocks=1, n_heads=2, d_key=4)
    >>> seq_probs, annot_probs = model([np.full((2, 7), 25, "int32"), np.zeros((2, 5), "float32")])
    >>> tuple(seq_probs.shape), tuple(annot_probs.shape)
    ((2, 7, 26), (2, 5))
    """

    def __init__(
        self,
        n_annotations: int,
        vocab_size: int = VOCAB_SIZE,
        d_seq: int = 128,
        d_global: int = 512,
        n_blocks: int = 6,
        n_heads: int = 4,
        d_key: int = 64,
        conv_kernel_size: int = 9,
        wide_conv_dilation_rate: int = 5,
        activation: str = "gelu",
        attention_mask: bool = False,
        virtual_pad_length: int | None = None,
        dtype=None,
        **kwargs,
    ):
        sizes = dict(n_annotations=n_annotations, vocab_size=vocab_size, d_seq=d_seq, d_global=d_global,
                     n_blocks=n_blocks, n_heads=n_heads, d_key=d_key, conv_kernel_size=conv_kernel_size,
                     wide_conv_dilation_rate=wide_conv_dilation_rate)
        _check_architecture(sizes, attention_mask, virtual_pad_length)
        # "gelu" is the exact GELU, as the 2021 model used, in its erf form (exportable to ONNX).
        act = gelu if activation == "gelu" else keras.activations.get(activation)
        L = keras.layers

        tokens = keras.Input(shape=(None,), dtype="int32", name="input-seq")
        annotations = keras.Input(shape=(n_annotations,), dtype="float32", name="input-annotations")

        embedding = L.Embedding(vocab_size, d_seq, name="embedding-seq-input", dtype=dtype)
        local = embedding(tokens)
        glob = L.Dense(d_global, activation=act, name="dense-global-input", dtype=dtype)(annotations)
        mask = PaddingMask(name="padding-mask")(tokens) if attention_mask else None
        # Virtual padding: the state of a <PAD> far from the sequence, (batch, 1, d_seq), runs through
        # the local track beside the sequence, through the same layers (called a second time; the
        # convolutions return it from their summed taps). The sequence's call stays each layer's first.
        pad = embedding(PadTokens(name="pad-tokens")(tokens)) if virtual_pad_length is not None else None

        blocks = []
        for b in range(1, n_blocks + 1):
            block = ProteinBertBlock.create(
                b, d_seq=d_seq, d_global=d_global, n_heads=n_heads, d_key=d_key, conv_kernel_size=conv_kernel_size,
                wide_conv_dilation_rate=wide_conv_dilation_rate, activation=act,
                virtual_length=virtual_pad_length, dtype=dtype)
            blocks.append(block)
            local, pad, glob = _apply_block(block, local, pad, glob, mask)

        out_seq = L.Dense(vocab_size, activation="softmax", name="output-seq", dtype="float32")(local)
        out_annot = L.Dense(n_annotations, activation="sigmoid", name="output-annotations",
                            dtype="float32")(glob)

        super().__init__(inputs=[tokens, annotations], outputs=[out_seq, out_annot], **kwargs)
        # The blocks' layers are the model's own (tracked above); the tuple only groups them.
        self._blocks = tuple(blocks)
        for key, value in sizes.items():  # the architecture, as get_config returns it
            setattr(self, key, value)
        self.activation = activation
        self.attention_mask = attention_mask
        self.virtual_pad_length = virtual_pad_length
        self.policy_name = None if dtype is None else keras.dtype_policies.get(dtype).name

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "n_annotations": self.n_annotations,
            "vocab_size": self.vocab_size,
            "d_seq": self.d_seq,
            "d_global": self.d_global,
            "n_blocks": self.n_blocks,
            "n_heads": self.n_heads,
            "d_key": self.d_key,
            "conv_kernel_size": self.conv_kernel_size,
            "wide_conv_dilation_rate": self.wide_conv_dilation_rate,
            "activation": self.activation,
            "attention_mask": self.attention_mask,
            "virtual_pad_length": self.virtual_pad_length,
            "dtype": self.policy_name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @property
    def blocks(self) -> tuple:
        """The :class:`~proteinbert.model.block.ProteinBertBlock` s, first to last."""
        return self._blocks

    @property
    def architecture(self) -> dict:
        """The flat keyword arguments that rebuild this architecture (without name/dtype)."""
        config = self.get_config()
        for key in ("name", "trainable", "dtype"):
            config.pop(key)
        return config

    # Layer names of the hidden representations, in the 2021 concatenation order.
    def hidden_layer_names(self, track: str, layers: str = "all") -> list[str]:
        """Names of the layers whose outputs make up a hidden representation.

        ``track`` is ``"local"`` (per residue) or ``"global"`` (per protein); ``layers`` is
        ``"all"`` (the 2021 concatenation: 1562 / 15599 wide for the released model) or
        ``"last"`` (the final block's normalised state: ``d_seq`` / ``d_global`` wide).
        """
        if track not in ("local", "global"):
            raise InputError(f"track must be 'local' or 'global'. Received: track={track!r}")
        if layers not in ("all", "last"):
            raise InputError(f"layers must be 'all' or 'last'. Received: layers={layers!r}")
        prefix = "seq" if track == "local" else "global"
        if layers == "last":
            return [f"{prefix}-merge2-norm-block{self.n_blocks}"]
        names = [] if track == "local" else ["dense-global-input"]
        for b in range(1, self.n_blocks + 1):
            names += [f"{prefix}-merge1-norm-block{b}", f"{prefix}-merge2-norm-block{b}"]
        names.append("output-seq" if track == "local" else "output-annotations")
        return names

    def hidden_width(self, track: str, layers: str = "all") -> int:
        """Width of the hidden representation chosen by ``track`` / ``layers``."""
        return sum(int(self.get_layer(n).output.shape[-1]) for n in self.hidden_layer_names(track, layers))


def hidden_representation_model(backbone: ProteinBertBackbone, layers: str = "all") -> keras.Model:
    """A model sharing ``backbone``'s weights whose outputs are ``[local (B, L, ·), global (B, ·)]``.

    ``layers="all"`` reproduces the 2021 ``get_model_with_hidden_layers_as_outputs``;
    ``layers="last"`` gives the final block only (``d_seq`` / ``d_global`` wide).
    """
    outputs = []
    for track in ("local", "global"):
        tensors = [backbone.get_layer(n).output for n in backbone.hidden_layer_names(track, layers)]
        name = f"hidden-{track}"
        if len(tensors) == 1:
            outputs.append(keras.layers.Identity(name=name, dtype="float32")(tensors[0]))
        else:
            outputs.append(keras.layers.Concatenate(axis=-1, name=name, dtype="float32")(tensors))
    return keras.Model(inputs=backbone.inputs, outputs=outputs, name=f"{backbone.name}_hidden_{layers}")


def with_virtual_padding(backbone: ProteinBertBackbone, virtual_pad_length: int | None) -> ProteinBertBackbone:
    """``backbone`` rebuilt with another ``virtual_pad_length`` (weights copied), or itself if unchanged.

    >>> import numpy as np
    >>> from proteinbert.tokenizer import encode_batch
    >>> plain = ProteinBertBackbone(n_annotations=3, d_seq=8, d_global=16, n_blocks=2, n_heads=2, d_key=4)
    >>> virtual = with_virtual_padding(plain, 512)
    >>> annotations = np.zeros((1, 3), "float32")
    >>> padded_512 = plain([encode_batch(["MKVLAG"], 512), annotations])[1]  # what the 2021 code computed
    >>> emulated = virtual([encode_batch(["MKVLAG"], 128), annotations])[1]  # a quarter of the work
    >>> bool(np.allclose(emulated, padded_512, atol=1e-5))
    True
    """
    if virtual_pad_length == backbone.virtual_pad_length:
        return backbone
    return rebuilt(backbone, virtual_pad_length=virtual_pad_length)


_KEEP = object()


def rebuilt(backbone: ProteinBertBackbone, dtype=_KEEP, **changes) -> ProteinBertBackbone:
    """A new backbone with ``backbone``'s weights and name, and the settings in ``changes``
    (weightless ones: ``virtual_pad_length``, ``attention_mask``) or another ``dtype`` policy.

    >>> small = ProteinBertBackbone(n_annotations=3, d_seq=8, d_global=16, n_blocks=1, n_heads=2, d_key=4)
    >>> rebuilt(small, dtype="mixed_bfloat16").policy_name, rebuilt(small, attention_mask=True).attention_mask
    ('mixed_bfloat16', True)
    """
    unknown = sorted(set(changes) - set(backbone.architecture))
    if unknown:
        raise InputError(f"unknown backbone settings: {', '.join(unknown)}")
    model = ProteinBertBackbone(**{**backbone.architecture, **changes}, name=backbone.name,
                                dtype=backbone.policy_name if dtype is _KEEP else dtype)
    model.set_weights(backbone.get_weights())
    return model
