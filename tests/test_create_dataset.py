"""create_dataset / set_test_set on real data from ../shared/data (UniRef-like, UniProtKB XML, Swiss-Prot 2014)."""

import gzip
import json
import os

import h5py
import networkx as nx
import numpy as np
import obonet
import pytest
from lxml import etree

from conftest import REPO, require_shared
from proteinbert.cli import create_dataset as create_cli
from proteinbert.cli import set_test_set as test_set_cli
from proteinbert.data.dataset_builder import (DatasetSettings, build_dataset, rng_for_test_set,
                                              set_test_set)
from proteinbert.data.fasta import read_fasta
from proteinbert.data.gene_ontology import GeneOntology
from proteinbert.data.h5dataset import PretrainingDataset
from proteinbert.data.streams import file_sha256
from proteinbert.errors import DatasetSchemaError, FormatError, InputError

UNIREF = "http://uniprot.org/uniref"
GO_TYPES = {"GO Molecular Function", "GO Biological Process", "GO Cellular Component"}


# -- fixtures --------------------------------------------------------------------------------------
class _Inputs(dict):
    """The files the repository ships are read from data/; the others from ../shared, when a test
    asks for them (only that test is skipped if ../shared is absent)."""

    SHARED = {
        "uniref_xml": ("data", "uniref_like", "uniref90_like.sprot250.xml.gz"),
        "uniref_fasta": ("data", "uniref_like", "uniref90_like.sprot250.fasta"),
        "uniprot_xml": ("data", "uniprot_xml", "uniprot_sprot_250.uniprot-rs.xml.gz"),
        "excerpt": ("data", "go", "go-2019-01-27.excerpt-sprot250.obo"),
    }

    def __missing__(self, key):
        return require_shared(*self.SHARED[key])


@pytest.fixture(scope="module")
def paths():
    data = REPO / "data"
    return _Inputs(sp_fasta=data / "sp2014_go.2k.fasta.gz", sp_tsv=data / "sp2014_go.2k.go.tsv.gz",
                   go2019=data / "go-2019-01-27.obo.gz")


@pytest.fixture(scope="module")
def go2019_graph(paths):
    """The full 2019 GO as a plain obonet graph (parsed once per module: it takes seconds)."""
    return obonet.read_obo(str(paths["go2019"]), ignore_obsolete=False)


@pytest.fixture(scope="module")
def uniref_h5(paths, tmp_path_factory):
    out = tmp_path_factory.mktemp("uniref") / "uniref.h5"
    summary = build_dataset(DatasetSettings(
        output=out, go_obo=paths["excerpt"], input_kind="uniref", xml=paths["uniref_xml"],
        fasta=paths["uniref_fasta"], min_records_per_term=1, progress=False))
    return out, summary


def uniref_settings(paths, out, **kw):
    base = dict(output=out, go_obo=paths["excerpt"], input_kind="uniref", xml=paths["uniref_xml"],
                fasta=paths["uniref_fasta"], min_records_per_term=1, progress=False)
    base.update(kw)
    return DatasetSettings(**base)


def independent_closure(graph, relations=("is_a",)):
    """GO id -> set of primary ids of it and its ancestors, computed with networkx only."""
    sub = nx.DiGraph()
    sub.add_edges_from((u, v) for u, v, k in graph.edges(keys=True) if k in relations)
    alt = {a: n for n, d in graph.nodes(data=True) for a in d.get("alt_id", []) or []}
    live = {n for n, d in graph.nodes(data=True) if d and d.get("is_obsolete") != "true"}

    def closure(go_id):
        go_id = go_id if go_id in live else alt.get(go_id, go_id)
        if go_id not in live:
            return set()
        return {go_id} | (nx.descendants(sub, go_id) if go_id in sub else set())
    return closure


def read_all(path):
    with PretrainingDataset(path) as ds:
        batch = ds.read(0, len(ds))
        return ds.annotations, batch, ds.metadata


def masks_by_id(annotations, batch):
    return {uid: {annotations[j] for j in np.flatnonzero(row)}
            for uid, row in zip(batch.uniprot_ids, batch.annotation_masks)}


def files_in(directory):
    return sorted(p.name for p in directory.iterdir())


# -- the UniRef route ------------------------------------------------------------------------------
def test_uniref_route_propagates_to_all_ancestors(paths, uniref_h5):
    out, summary = uniref_h5
    annotations, batch, meta = read_all(out)
    assert summary.n_records == len(batch.seqs) == 250
    closure = independent_closure(obonet.read_obo(str(paths["excerpt"]), ignore_obsolete=False))
    expected = {}
    direct_only = 0
    with gzip.open(paths["uniref_xml"]) as f:
        for _, entry in etree.iterparse(f, tag=f"{{{UNIREF}}}entry"):
            name = entry.find(f"{{{UNIREF}}}representativeMember/{{{UNIREF}}}dbReference").get("id")
            gos = [p.get("value") for p in entry.findall(f"{{{UNIREF}}}property") if p.get("type") in GO_TYPES]
            expected[name] = set().union(*(closure(g) for g in gos)) if gos else set()
            direct_only += len(set(gos))
    got = masks_by_id(annotations, batch)
    assert got == expected
    # min_records_per_term=1: every term used by some record is a column, the first one included
    # (2021 dropped the term of index 0 and kept only direct annotations).
    assert annotations == sorted(set().union(*expected.values()))
    assert batch.annotation_masks[:, 0].any()
    assert int(batch.annotation_masks.sum()) > direct_only
    assert summary.go_annotations["unknown_skipped"] == 1  # GO:0140404 is not in the 2019 excerpt
    assert summary.go_annotations["unknown_examples"] == ["GO:0140404"]


def test_uniref_route_joins_on_the_cluster_id(paths, uniref_h5):
    out, _ = uniref_h5
    _, batch, _ = read_all(out)
    with h5py.File(out) as h5:
        accessions = [a.decode() for a in h5["uniprot_accessions"][:]]
    fasta = {r.id: r.seq for r in read_fasta(paths["uniref_fasta"])}
    for uid, acc, seq, n in zip(batch.uniprot_ids, accessions, batch.seqs, batch.seq_lengths):
        assert fasta[f"UniRef90_{acc}"] == seq and len(seq) == n
    # 1001R_ASFK5 (accession P0C9F0) has a Swiss-Prot mnemonic name: 2021 lost such clusters.
    i = batch.uniprot_ids.index("1001R_ASFK5")
    assert accessions[i] == "P0C9F0" and batch.seqs[i].startswith("MVRLFYNPIKYLF")
    assert sorted(batch.uniprot_ids) != batch.uniprot_ids  # shuffled


def test_schema_dtypes_and_metadata(paths, uniref_h5):
    out, summary = uniref_h5
    with h5py.File(out) as h5:
        for name in ("included_annotations", "uniprot_ids", "seqs"):
            assert h5py.check_string_dtype(h5[name].dtype) is not None
        assert h5["seq_lengths"].dtype == np.int32
        assert h5["annotation_masks"].dtype == bool and h5["test_set_mask"].dtype == bool
        attrs = dict(h5.attrs)
    assert attrs["go_release"] == "releases/2019-01-27"
    assert attrs["n_records"] == 250 and attrs["n_annotations"] == summary.n_annotations
    assert attrs["min_records_per_term"] == 1 and attrs["tool_version"]
    inputs = {i["role"]: i for i in json.loads(attrs["inputs"])}
    assert inputs["uniref_xml"]["sha256"] == "77c1f15277473ba11d9f8bf114eedb691e60843ce079549497fea20401e85a7f"
    assert inputs["fasta"]["sha256"] == file_sha256(paths["uniref_fasta"])
    assert inputs["fasta"]["size"] == os.path.getsize(paths["uniref_fasta"])
    assert json.loads(attrs["go_obo"])["sha256"] == file_sha256(paths["excerpt"])


def test_uniprot_xml_route_matches_uniref_route(paths, uniref_h5, tmp_path):
    out = tmp_path / "uniprot.h5"
    build_dataset(DatasetSettings(output=out, go_obo=paths["excerpt"], input_kind="uniprot",
                                  xml=paths["uniprot_xml"], min_records_per_term=1, progress=False))
    ann_a, batch_a, _ = read_all(uniref_h5[0])
    ann_b, batch_b, _ = read_all(out)
    assert ann_a == ann_b
    assert masks_by_id(ann_a, batch_a) == masks_by_id(ann_b, batch_b)
    assert dict(zip(batch_a.uniprot_ids, batch_a.seqs)) == dict(zip(batch_b.uniprot_ids, batch_b.seqs))


def test_min_records_threshold(paths, uniref_h5, tmp_path):
    annotations, batch, _ = read_all(uniref_h5[0])
    counts = batch.annotation_masks.sum(axis=0)
    summary = build_dataset(uniref_settings(paths, tmp_path / "t10.h5", min_records_per_term=10))
    ann10, batch10, _ = read_all(tmp_path / "t10.h5")
    assert ann10 == [a for a, c in zip(annotations, counts) if c >= 10]
    assert summary.n_annotations == len(ann10) and batch10.annotation_masks.sum(axis=0).min() >= 10


# -- FASTA + TSV on the real 2019 GO ---------------------------------------------------------------
def test_fasta_tsv_route_against_networkx_on_go2019(paths, go2019_graph, tmp_path):
    out = tmp_path / "sp.h5"
    go = GeneOntology(go2019_graph, str(paths["go2019"]))
    summary = build_dataset(DatasetSettings(output=out, go_obo=paths["go2019"], input_kind="fasta_tsv",
                                            fasta=paths["sp_fasta"], go_tsv=paths["sp_tsv"],
                                            min_records_per_term=100, progress=False), ontology=go)
    annotations, batch, meta = read_all(out)
    closure = independent_closure(go2019_graph)
    expected = {}
    with gzip.open(paths["sp_tsv"], "rt") as f:
        next(f)
        for line in f:
            acc, *cells = line.rstrip("\n").split("\t")
            ids = [g for c in cells for g in c.split(";") if g]
            expected[acc] = set().union(*(closure(g) for g in ids)) if ids else set()
    counts = {}
    for terms in expected.values():
        for t in terms:
            counts[t] = counts.get(t, 0) + 1
    kept = sorted(t for t, c in counts.items() if c >= 100)
    assert annotations == kept and summary.n_records == 2000
    got = masks_by_id(annotations, batch)
    assert got == {acc: terms & set(kept) for acc, terms in expected.items()}
    assert summary.go_annotations["via_alt_id"] > 0 and summary.go_annotations["obsolete_skipped"] > 0
    assert meta["go_release"] == "releases/2019-01-27"


# -- shuffling --------------------------------------------------------------------------------------
def test_shuffle_is_seeded_and_bucket_splitting_keeps_records(paths, uniref_h5, tmp_path):
    _, base, _ = read_all(uniref_h5[0])
    build_dataset(uniref_settings(paths, tmp_path / "again.h5"))
    _, again, _ = read_all(tmp_path / "again.h5")
    assert again.uniprot_ids == base.uniprot_ids
    build_dataset(uniref_settings(paths, tmp_path / "seed1.h5", seed=1))
    _, other, _ = read_all(tmp_path / "seed1.h5")
    assert other.uniprot_ids != base.uniprot_ids and sorted(other.uniprot_ids) == sorted(base.uniprot_ids)
    # Tiny buckets force several buckets and re-splitting of oversized ones; nothing may be lost.
    build_dataset(uniref_settings(paths, tmp_path / "small.h5", records_per_bucket=7))
    ann, small, _ = read_all(tmp_path / "small.h5")
    ann0, _, _ = read_all(uniref_h5[0])
    assert sorted(small.uniprot_ids) == sorted(base.uniprot_ids) and ann == ann0
    assert masks_by_id(ann, small) == masks_by_id(ann0, base)


# -- test set ---------------------------------------------------------------------------------------
def test_test_set_from_ids_and_probability(paths, tmp_path):
    ids = tmp_path / "test_ids.txt"
    ids.write_text("# held out\n1001R_ASFK5\nP0C9F1\n\nNOT_THERE_1\n")
    out = tmp_path / "t.h5"
    summary = build_dataset(uniref_settings(paths, out, test_ids_file=ids))
    _, batch, meta = read_all(out)
    with h5py.File(out) as h5:
        accs = [a.decode() for a in h5["uniprot_accessions"][:]]
    in_test = {u for u, a, t in zip(batch.uniprot_ids, accs, batch.test_set_mask) if t}
    assert in_test == {"1001R_ASFK5", "1001R_ASFM2"}  # P0C9F1 is 1001R_ASFM2's accession
    assert (summary.n_test_records, summary.test_ids_listed, summary.test_ids_not_found) == (2, 3, 1)

    out_p = tmp_path / "p.h5"
    build_dataset(uniref_settings(paths, out_p, test_probability=0.3, seed=5))
    _, batch_p, _ = read_all(out_p)
    expected = rng_for_test_set(5).random(250) < 0.3
    assert np.array_equal(batch_p.test_set_mask, expected) and 40 < expected.sum() < 110


def test_set_test_set_on_existing_file_matches_build(paths, tmp_path):
    built = tmp_path / "built.h5"
    build_dataset(uniref_settings(paths, built, test_probability=0.2, seed=3))
    plain = tmp_path / "plain.h5"
    build_dataset(uniref_settings(paths, plain, seed=3))
    copy = tmp_path / "copy.h5"
    before = file_sha256(plain)
    result = set_test_set(plain, test_probability=0.2, seed=3, output=copy, progress=False)
    assert file_sha256(plain) == before  # --output leaves the input alone
    assert np.array_equal(read_all(copy)[1].test_set_mask, read_all(built)[1].test_set_mask)
    assert result["n_test_records"] == int(read_all(built)[1].test_set_mask.sum())
    ids = tmp_path / "ids.txt"
    ids.write_text("1001R_ASFK5\n")
    assert test_set_cli.main([str(plain), "--test-ids", str(ids), "--no-progress", "-q"]) == 0
    _, batch, meta = read_all(plain)
    assert [u for u, t in zip(batch.uniprot_ids, batch.test_set_mask) if t] == ["1001R_ASFK5"]
    assert meta["n_test_records"] == 1
    with h5py.File(plain) as h5:
        assert "test_set_mask.partial" not in h5
    assert test_set_cli.main([str(plain)]) == 2  # nothing to do is a usage error


def test_2021_layout_file_opens_and_takes_a_test_set(tmp_path):
    """A file as the 2021 code wrote it: fixed-length byte strings, no metadata attributes."""
    path = tmp_path / "dataset_2021.h5"
    seqs = ["MKVLAAGIVG", "MSTNPKPQRK", "MAAAA"]
    with h5py.File(path, "w") as h5:
        h5.create_dataset("included_annotations", data=np.array([b"GO:0003674", b"GO:0005575"], dtype="S10"))
        h5.create_dataset("uniprot_ids", data=np.array([b"A_HUMAN", b"B_MOUSE", b"C_YEAST"], dtype="S7"))
        h5.create_dataset("seqs", data=np.array([s.encode() for s in seqs], dtype="S10"))
        h5.create_dataset("seq_lengths", data=np.array([10, 10, 5], dtype=np.int32))
        h5.create_dataset("annotation_masks", data=np.array([[1, 0], [0, 1], [1, 1]], dtype=bool))
        h5.create_dataset("test_set_mask", data=np.zeros(3, dtype=bool))
    with PretrainingDataset(path) as ds:
        batch = ds.read(0, 3)
        assert (len(ds), ds.n_annotations, ds.annotations) == (3, 2, ["GO:0003674", "GO:0005575"])
        assert batch.seqs == seqs and batch.uniprot_ids == ["A_HUMAN", "B_MOUSE", "C_YEAST"]
    ids = tmp_path / "ids.txt"
    ids.write_text("B_MOUSE\n")
    set_test_set(path, test_ids_file=ids, progress=False)
    assert read_all(path)[1].test_set_mask.tolist() == [False, True, False]
    with h5py.File(path, "a") as h5:
        del h5["seq_lengths"]
    with pytest.raises(DatasetSchemaError, match="seq_lengths"):
        PretrainingDataset(path)


# -- CLI, bad inputs, safety ------------------------------------------------------------------------
def cli(paths, out, *extra, xml=None, fasta=None):
    argv = ["--uniref-xml", str(xml or paths["uniref_xml"]), "--fasta", str(fasta or paths["uniref_fasta"]),
            "--go-obo", str(paths["excerpt"]), "--output", str(out), "--min-records", "1", "--no-progress", *extra]
    return create_cli.main(argv)


def test_cli_fasta_tsv_route_and_rerun(paths, tmp_path, capsys):
    out = tmp_path / "sp.h5"
    argv = ["--fasta", str(paths["sp_fasta"]), "--go-tsv", str(paths["sp_tsv"]), "--go-obo", str(paths["excerpt"]),
            "--output", str(out), "--min-records", "100", "--no-progress"]
    assert create_cli.main(argv) == 0
    first = read_all(out)
    assert create_cli.main(argv) == 2  # an existing output is kept without --overwrite
    assert f"--output {out} exists; pass --overwrite" in capsys.readouterr().err
    assert create_cli.main(argv + ["--overwrite"]) == 0  # replaced atomically
    second = read_all(out)
    assert first[1].uniprot_ids == second[1].uniprot_ids and first[0] == second[0]
    assert files_in(tmp_path) == ["sp.h5"]
    # Unknown ids (the excerpt lacks most of the 2k set's terms) are counted, not fatal.
    assert json.loads(first[2]["go_annotation_skips"])["unknown_skipped"] > 0


def test_cli_usage_errors(paths, tmp_path, capsys):
    out = tmp_path / "x.h5"
    base = ["--go-obo", str(paths["excerpt"]), "--output", str(out)]
    assert create_cli.main(base) == 2
    assert create_cli.main(base + ["--uniref-xml", str(paths["uniref_xml"])]) == 2
    assert create_cli.main(base + ["--uniprot-xml", str(paths["uniprot_xml"]), "--fasta", str(paths["uniref_fasta"])]) == 2
    assert cli(paths, out, "--test-probability", "1.5") == 2
    assert cli(paths, out, "--min-records", "0") == 2
    assert create_cli.main(["--help"]) == 0
    assert "set_test_set" in capsys.readouterr().out
    assert not out.exists()


def test_missing_input_file_exits_1(paths, tmp_path, capsys):
    assert cli(paths, tmp_path / "x.h5", xml=tmp_path / "nope.xml.gz") == 1
    assert "nope.xml.gz" in capsys.readouterr().err
    assert files_in(tmp_path) == []


def test_truncated_gzip_xml(paths, tmp_path, capsys):
    bad = tmp_path / "cut.xml.gz"
    bad.write_bytes(paths["uniref_xml"].read_bytes()[:20_000])
    out = tmp_path / "out" / "x.h5"
    assert cli(paths, out, xml=bad) == 1
    err = capsys.readouterr().err
    assert "truncated" in err and "cut.xml.gz" in err
    assert files_in(out.parent) == []  # no output, no scratch left behind


def test_malformed_xml_has_line_number(paths, tmp_path, capsys):
    text = gzip.decompress(paths["uniref_xml"].read_bytes()).decode("iso-8859-1").splitlines(keepends=True)
    text[40] = "<property type=\"broken\" value=\"x\">\n"  # never closed
    bad = tmp_path / "bad.xml"
    bad.write_text("".join(text), encoding="iso-8859-1")
    assert cli(paths, tmp_path / "x.h5", xml=bad) == 1
    err = capsys.readouterr().err
    assert "bad.xml at line" in err and "malformed XML" in err
    assert files_in(tmp_path) == ["bad.xml"]


def test_malformed_fasta_has_line_number(paths, tmp_path, capsys):
    lines = paths["uniref_fasta"].read_text().splitlines(keepends=True)
    bad = tmp_path / "bad.fasta"
    bad.write_text("garbage before the first header\n" + "".join(lines))
    assert cli(paths, tmp_path / "x.h5", fasta=bad) == 1
    assert "bad.fasta at line 1" in capsys.readouterr().err
    assert files_in(tmp_path) == ["bad.fasta"]


def test_malformed_obo_exits_1(paths, tmp_path, capsys):
    bad = tmp_path / "bad.obo"
    bad.write_text(paths["excerpt"].read_text().replace("[Term]\nid: GO:0003674", "[Term]\nid GO 0003674", 1))
    argv = ["--uniprot-xml", str(paths["uniprot_xml"]), "--go-obo", str(bad), "--output", str(tmp_path / "x.h5")]
    assert create_cli.main(argv) == 1
    assert "bad.obo at line" in capsys.readouterr().err


def test_protein_missing_from_fasta_counted_or_fatal(paths, tmp_path, capsys):
    records = list(read_fasta(paths["uniref_fasta"]))
    short = tmp_path / "short.fasta"
    short.write_text("".join(f">{r.id} {r.description}\n{r.seq}\n" for r in records if r.id != "UniRef90_P0C9F1"))
    summary = build_dataset(uniref_settings(paths, tmp_path / "ok.h5", fasta=short))
    assert (summary.n_records, summary.n_missing_sequences) == (249, 1)
    assert summary.missing_sequence_examples == ("UniRef90_P0C9F1",)
    previous = file_sha256(tmp_path / "ok.h5")
    assert cli(paths, tmp_path / "ok.h5", "--fail-on-missing", "--overwrite", fasta=short) == 1
    assert "UniRef90_P0C9F1" in capsys.readouterr().err
    assert file_sha256(tmp_path / "ok.h5") == previous  # a failed run leaves an existing output as it was
    assert files_in(tmp_path) == ["ok.h5", "short.fasta"]


def test_empty_results_are_clear_errors(paths, tmp_path, capsys):
    assert cli(paths, tmp_path / "x.h5", "--min-records", "100000") == 1
    assert "lower min_records_per_term" in capsys.readouterr().err
    other = tmp_path / "other.fasta"
    other.write_text(">UniRef90_NOPE\nMKV\n")
    with pytest.raises(InputError, match="no records to write"):
        build_dataset(uniref_settings(paths, tmp_path / "x.h5", fasta=other))
    assert files_in(tmp_path) == ["other.fasta"]


def test_duplicate_ids_are_format_errors(paths, tmp_path):
    fasta_text = paths["uniref_fasta"].read_text()
    first = fasta_text.split(">")[1]
    dup = tmp_path / "dup.fasta"
    dup.write_text(fasta_text + ">" + first)
    with pytest.raises(FormatError, match="more than once"):
        build_dataset(uniref_settings(paths, tmp_path / "x.h5", fasta=dup))
    tsv = tmp_path / "dup.tsv"
    tsv.write_text("accession\tgo\nP1\tGO:0003674\nP1\tGO:0005575\n")
    fa = tmp_path / "p.fasta"
    fa.write_text(">P1\nMKV\n")
    with pytest.raises(FormatError, match="'P1' occurs 2 times"):
        build_dataset(DatasetSettings(output=tmp_path / "x.h5", go_obo=paths["excerpt"], input_kind="fasta_tsv",
                                      fasta=fa, go_tsv=tsv, min_records_per_term=1, progress=False))
    assert not (tmp_path / "x.h5").exists()


def test_settings_are_validated():
    with pytest.raises(InputError, match="input_kind"):
        DatasetSettings(output="x.h5", go_obo="go.obo", input_kind="sqlite")
    with pytest.raises(InputError, match="needs fasta"):
        DatasetSettings(output="x.h5", go_obo="go.obo", input_kind="uniref", xml="a.xml")
    with pytest.raises(InputError, match="test_probability"):
        DatasetSettings(output="x.h5", go_obo="go.obo", input_kind="uniprot", xml="a.xml", test_probability=2)
    s = DatasetSettings(output="x.h5", go_obo="go.obo", input_kind="uniprot", xml="a.xml")
    with pytest.raises(Exception):
        s.seed = 1  # frozen


def test_single_process_mode_writes_the_same_file_content(paths, uniref_h5, tmp_path):
    out = tmp_path / "serial.h5"
    build_dataset(uniref_settings(paths, out, parallel=False))
    a, b = read_all(uniref_h5[0]), read_all(out)
    assert a[0] == b[0] and a[1].uniprot_ids == b[1].uniprot_ids and a[1].seqs == b[1].seqs
    assert np.array_equal(a[1].annotation_masks, b[1].annotation_masks)


def test_wrong_xml_kind_and_bad_tsv(paths, tmp_path):
    with pytest.raises(FormatError, match="no .*entry elements found.*UniProtKB"):
        build_dataset(DatasetSettings(output=tmp_path / "x.h5", go_obo=paths["excerpt"], input_kind="uniprot",
                                      xml=paths["uniref_xml"], progress=False))
    tsv = tmp_path / "bad.tsv"
    tsv.write_text("accession\tgo\nP1\tGO:0003674\nP2 GO:0005575\n")
    fa = tmp_path / "p.fasta"
    fa.write_text(">P1\nMKV\n>P2\nMKV\n")
    with pytest.raises(FormatError) as err:
        build_dataset(DatasetSettings(output=tmp_path / "x.h5", go_obo=paths["excerpt"], input_kind="fasta_tsv",
                                      fasta=fa, go_tsv=tsv, min_records_per_term=1, progress=False))
    assert err.value.line == 3 and "bad.tsv" in str(err.value)
    assert not (tmp_path / "x.h5").exists()


def test_threaded_input_gzip_members_truncation_and_digest(paths, tmp_path):
    from proteinbert.data.streams import ThreadedInput

    raw = gzip.decompress(paths["uniref_xml"].read_bytes())
    two = tmp_path / "two.gz"
    two.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))  # concatenated members
    with ThreadedInput(two) as s:
        assert s.read() == raw
    assert s.digest == file_sha256(two)
    with ThreadedInput(paths["uniref_fasta"]) as s:  # plain files pass through
        assert s.read() == paths["uniref_fasta"].read_bytes()
    cut = tmp_path / "cut.gz"
    cut.write_bytes(paths["uniref_xml"].read_bytes()[:-100])
    with pytest.raises(FormatError, match="truncated"), ThreadedInput(cut) as s:
        s.read()
    junk = tmp_path / "junk.gz"
    junk.write_bytes(b"\x1f\x8b" + b"not really gzip" * 100)
    with pytest.raises(FormatError, match="corrupt gzip"), ThreadedInput(junk) as s:
        s.read()


def test_bin_launchers_run_as_scripts(paths, tmp_path):
    """The launchers as users run them (separate interpreter, worker processes included)."""
    import subprocess
    import sys
    from conftest import REPO

    out = tmp_path / "bin.h5"
    argv = [sys.executable, str(REPO / "bin" / "create_dataset"), "--uniref-xml", str(paths["uniref_xml"]),
            "--fasta", str(paths["uniref_fasta"]), "--go-obo", str(paths["excerpt"]), "-o", str(out),
            "--min-records", "5", "--no-progress", "-q"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(PretrainingDataset(out)) == 250
    done = subprocess.run([sys.executable, str(REPO / "bin" / "set_test_set"), str(out), "--test-probability", "0.5",
                           "--no-progress"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "in the test set" in done.stdout, done.stderr
    done = subprocess.run(argv[:2] + ["--output", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "--go-obo" in done.stderr


def test_uniprot_style_fasta_ids_join_on_accession(paths, tmp_path):
    tsv = tmp_path / "a.tsv"
    tsv.write_text("accession\tgo\nP0C9F0\tGO:0005515\nP0C9F1\tGO:0003674\n")
    fa = tmp_path / "a.fasta"
    fa.write_text(">sp|P0C9F0|1001R_ASFK5 Protein MGF 100-1R\nMVRLF\n>tr|P0C9F1|X_Y other\nMKV\n>sp|Q99999|NOPE\nMA\n")
    argv = ["--fasta", str(fa), "--go-tsv", str(tsv), "--go-obo", str(paths["excerpt"]), "-o", str(tmp_path / "a.h5"),
            "--min-records", "1", "--single-process", "--no-progress", "-q"]
    assert create_cli.main(argv) == 0
    annotations, batch, meta = read_all(tmp_path / "a.h5")
    assert sorted(batch.uniprot_ids) == ["P0C9F0", "P0C9F1"] and "GO:0003674" in annotations
    assert json.loads(meta["join_skips"])["sequences_without_entry"] == 1
