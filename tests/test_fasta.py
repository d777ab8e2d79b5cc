"""parse_fasta: a str or PathLike is a path, a stream is a stream; clear errors otherwise."""

import gzip
import io
from pathlib import Path

import pytest

from proteinbert.data.fasta import parse_fasta, read_fasta
from proteinbert.errors import FormatError, InputError

REPO_FASTA = Path(__file__).resolve().parents[1] / "data" / "sp2014_go.2k.fasta.gz"
TEXT = ">a first\nMK\nV\n>b\nA\n"


@pytest.fixture
def plain(tmp_path):
    path = tmp_path / "in.fa"
    path.write_text(TEXT)
    return path


@pytest.mark.parametrize("as_type", [str, Path])
def test_a_str_or_path_is_read_as_a_file(plain, as_type):
    records = list(parse_fasta(as_type(plain)))
    assert [(r.id, r.description, r.seq, r.line) for r in records] == [("a", "first", "MKV", 1), ("b", "", "A", 4)]


def test_gzipped_files_by_content(tmp_path):
    path = tmp_path / "no_gz_suffix.fa"
    path.write_bytes(gzip.compress(TEXT.encode()))
    assert [r.seq for r in parse_fasta(str(path))] == ["MKV", "A"]
    first = next(parse_fasta(REPO_FASTA))
    assert first.id == "P00013" and len(list(read_fasta(REPO_FASTA))) == 2000


def test_streams_text_and_binary(plain):
    assert [r.id for r in parse_fasta(io.StringIO(TEXT))] == ["a", "b"]
    assert [r.id for r in parse_fasta(io.BytesIO(TEXT.encode()))] == ["a", "b"]
    assert [r.id for r in parse_fasta(TEXT.splitlines(keepends=True))] == ["a", "b"]  # any iterable of lines
    with open(plain) as handle:
        assert [r.seq for r in parse_fasta(handle)] == ["MKV", "A"]


def test_errors_name_the_file_or_the_stream(plain, tmp_path):
    bad = tmp_path / "bad.fa"
    bad.write_text("MKV\n>a\nMK\n")
    with pytest.raises(FormatError, match=r"Error in file .*bad\.fa at line 1: expected '>'"):
        list(parse_fasta(str(bad)))
    with open(bad) as handle, pytest.raises(FormatError, match=r"Error in file .*bad\.fa at line 1"):
        list(parse_fasta(handle))  # an open file is named by its name
    with pytest.raises(FormatError, match=r"Error in file <stream> at line 1"):
        list(parse_fasta(io.StringIO("MKV\n")))
    with pytest.raises(FormatError, match=r"Error in file given\.fa at line 1"):
        list(parse_fasta(io.StringIO("MKV\n"), "given.fa"))


def test_a_str_that_names_no_file_fails_at_the_call(tmp_path):
    missing = str(tmp_path / "missing.fa")
    with pytest.raises(FileNotFoundError, match=r"No such FASTA file: '.*missing\.fa'") as info:
        parse_fasta(missing)  # not iterated: the error comes from the call itself
    assert info.value.filename == missing
    with pytest.raises(InputError, match=r"reads a str as a file name, and '>a first\\nMK\\nV\\n>b\\nA\\n' looks like "
                                         r"FASTA text: pass the text as io.StringIO\(text\)"):
        parse_fasta(TEXT)
    with pytest.raises(IsADirectoryError, match=r"not a directory: '.*'"):
        parse_fasta(str(tmp_path))


def test_other_types_are_refused():
    with pytest.raises(TypeError, match="not bytes"):
        parse_fasta(TEXT.encode())
    with pytest.raises(TypeError, match="Received: int"):
        parse_fasta(3)
    with pytest.raises(TypeError, match="read_fasta takes a path; for a stream use parse_fasta"):
        read_fasta(io.StringIO(TEXT))
