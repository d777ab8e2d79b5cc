"""OBO files that would hang the closure or silently lose annotations are refused, naming the terms."""

import io
import os

import pytest

from proteinbert.cli import create_dataset as create_cli
from proteinbert.data.gene_ontology import GeneOntology, read_gene_ontology
from proteinbert.errors import FormatError

HEADER = "format-version: 1.2\ndata-version: releases/2000-01-01\n\n"


def term(i, *parents, name=True):
    lines = [f"[Term]", f"id: GO:{i:07d}"] + ([f"name: t{i}"] if name else [])
    lines += [f"is_a: GO:{p:07d} ! parent" for p in parents]
    return "\n".join(lines) + "\n\n"


def read(text, **kw):
    return GeneOntology.from_handle(io.StringIO(text), "x.obo", **kw)


def test_self_loop_is_refused_naming_the_term():
    with pytest.raises(FormatError, match=r"x\.obo: the is_a graph has cycles.*GO:0000002 is its own parent"):
        read(HEADER + term(1) + term(2, 1, 2))


def test_cycle_is_refused_naming_its_terms():
    with pytest.raises(FormatError) as err:
        read(HEADER + term(1) + term(2, 4) + term(3, 2) + term(4, 3, 1) + term(5, 2))
    assert "GO:0000002 ↔ GO:0000003 ↔ GO:0000004" in str(err.value)
    assert "GO:0000005" not in str(err.value)  # below the cycle, not on it


def test_part_of_cycle_only_matters_when_followed():
    text = HEADER + term(1) + term(2, 1).replace("\n\n", "\nrelationship: part_of GO:0000003\n\n") \
        + term(3, 1).replace("\n\n", "\nrelationship: part_of GO:0000002\n\n")
    assert len(read(text)) == 3
    with pytest.raises(FormatError, match="is_a/part_of graph has cycles"):
        read(text, follow_part_of=True)


@pytest.mark.parametrize("text,message", [
    (HEADER + term(1) + term(2, 1) + term(2, 1), r"1 duplicate \[Term\] id\(s\) \(e\.g\. line 13: GO:0000002 "
                                                 r"\(first at line 8\)\)"),
    (HEADER + term(1) + term(2, 9), r"1 parent\(s\) without a \[Term\] stanza \(e\.g\. GO:0000002 is_a GO:0000009\)"),
    (HEADER + term(1) + term(2, 1) + "[Term]\nid: GO:0000003", r"\[Term\] GO:0000003 has no name.*ends in the middle"),
    (HEADER + term(1) + term(2, 1, name=False), r"line 8: \[Term\] GO:0000002 has no name"),
])
def test_defects_are_fatal_unless_allowed(text, message, caplog):
    with pytest.raises(FormatError, match=message):
        read(text)
    go = read(text, allow_defects=True)
    assert sum(go.summary()["defects"].values()) >= 1
    assert "allowed" in caplog.text


def test_clean_releases_have_no_defects():
    go = read(HEADER + term(1) + term(2, 1))
    assert go.summary()["defects"] == {"duplicate_ids": 0, "incomplete_stanzas": 0, "truncated": 0,
                                       "dangling_parents": 0}


def test_bundled_2019_release_reads_without_defects():
    path = os.path.join(os.path.dirname(__file__), "..", "data", "go-2019-01-27.obo.gz")
    if not os.path.exists(path):
        pytest.skip("bundled GO release absent")
    go = read_gene_ontology(path, follow_part_of=True)
    assert not go.defects and len(go) == 45013


# -- through create_dataset --------------------------------------------------------------------------
@pytest.fixture
def inputs(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "x.fa").write_text(">P1\nMKVLAAGIVA\n>P2\nMSTNPKPQRK\n>P3\nMGSSHHHHHH\n")
    (d / "x.tsv").write_text("P1\tGO:0000002\nP2\tGO:0000003\nP3\tGO:0000002\n")
    return d


def run_create(d, obo_text, *extra):
    (d / "go.obo").write_text(obo_text)
    out = d.parent / "out" / "d.h5"
    argv = ["--fasta", str(d / "x.fa"), "--go-tsv", str(d / "x.tsv"), "--go-obo", str(d / "go.obo"), "-o", str(out),
            "--min-records", "1", "--no-progress", "--single-process", "-q", *extra]
    return create_cli.main(argv), out


def test_create_dataset_on_a_cyclic_obo_exits_1_without_scratch(inputs, capsys):
    code, out = run_create(inputs, HEADER + term(1) + term(2, 3) + term(3, 2))
    assert code == 1
    err = capsys.readouterr().err
    assert "go.obo" in err and "GO:0000002 ↔ GO:0000003" in err
    assert os.listdir(out.parent) == []  # no output, no scratch, no lock file


def test_create_dataset_on_a_truncated_obo_fails_unless_allowed(inputs, capsys):
    obo = HEADER + term(1) + term(2, 1) + "[Term]\nid: GO:0000003\nname: t3\nis_a: GO:0000001"
    code, out = run_create(inputs, obo)
    assert code == 1
    err = capsys.readouterr().err
    assert "ends in the middle of a line" in err and "--allow-obo-defects" in err
    assert os.listdir(out.parent) == []
    code, out = run_create(inputs, obo, "--allow-obo-defects")
    assert code == 0 and os.listdir(out.parent) == ["d.h5"]


def test_create_dataset_on_dangling_parents_and_duplicates_fails(inputs, capsys):
    code, _ = run_create(inputs, HEADER + term(1) + term(2, 1) + term(3, 8) + term(2, 1))
    assert code == 1
    err = capsys.readouterr().err
    assert "1 duplicate [Term] id(s)" in err and "GO:0000003 is_a GO:0000008" in err
