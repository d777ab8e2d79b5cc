import numpy as np
import pytest

from proteinbert import tokenizer as tok
from proteinbert.errors import InputError


def test_token_ids_are_pinned():
    # A compatibility contract with the released weights (SPEC §1).
    assert tok.TOKENS[:22] == tuple("ACDEFGHIKLMNPQRSTUVWXY")
    assert {t: tok.TOKEN_TO_ID[t] for t in tok.ADDITIONAL_TOKENS} == {
        "<OTHER>": 22, "<START>": 23, "<END>": 24, "<PAD>": 25}
    assert tok.VOCAB_SIZE == 26
    assert [tok.TOKEN_TO_ID[a] for a in "AMWY"] == [0, 10, 19, 21]


def test_encode_adds_start_end_and_pads():
    out = tok.encode_batch(["MKV", "A"], seq_len=7)
    assert out.dtype == np.int32
    assert out.tolist() == [[23, 10, 8, 18, 24, 25, 25], [23, 0, 24, 25, 25, 25, 25]]


def test_lowercase_is_uppercased_and_unknown_is_other():
    assert tok.encode("mkv").tolist() == tok.encode("MKV").tolist()
    # B, Z, O, J and '*' are not in the alphabet; X and U are.
    assert tok.encode_residues("BZOJ*XU").tolist() == [22, 22, 22, 22, 22, 20, 17]
    assert tok.encode_residues("Mé").tolist() == [10, 22]


def test_bytes_are_decoded_and_other_types_rejected():
    assert tok.encode(b"MK").tolist() == [23, 10, 8, 24]
    with pytest.raises(TypeError, match="must be str or bytes"):
        tok.encode(123)
    with pytest.raises(TypeError, match=r"seqs\[1\]"):
        tok.encode_batch(["MK", None])
    with pytest.raises(TypeError):
        tok.encode_batch("MKV")


def test_empty_and_too_long_are_clear_errors():
    with pytest.raises(InputError, match=r"seqs\[0\] is empty"):
        tok.encode_batch([""])
    with pytest.raises(InputError, match=r"seqs\[0\] has 6 residues.*seq_len=7"):
        tok.encode_batch(["MKVLAA"], seq_len=7)


def test_default_length_fits_longest_and_decode_roundtrip():
    out = tok.encode_batch(["MKV", "ACDEFG"])
    assert out.shape == (2, 8)
    assert tok.decode(out[1]) == "ACDEFG"
    assert tok.decode(tok.encode("MBK")) == "M?K"
