"""Gene Ontology reading (obonet) and ancestor closure, checked on the real 2019 GO release."""

import gzip
import random
import shutil

import networkx as nx
import obonet
import pytest

from conftest import require_shared
from proteinbert.data.gene_ontology import GeneOntology, read_gene_ontology
from proteinbert.errors import FormatError


@pytest.fixture(scope="module")
def go2019_path():
    return require_shared("data", "go", "go-2019-01-27.obo.gz")


@pytest.fixture(scope="module")
def raw_graph(go2019_path):
    """A plain obonet graph of the full 2019 GO, obsolete terms included (parsed once: it takes seconds)."""
    return obonet.read_obo(str(go2019_path), ignore_obsolete=False)


@pytest.fixture(scope="module")
def go2019(raw_graph, go2019_path):
    """Our ontology on that graph (the file-reading path is covered by the excerpt tests and the builder tests)."""
    return GeneOntology(raw_graph, str(go2019_path))


@pytest.fixture(scope="module")
def excerpt_path():
    return require_shared("data", "go", "go-2019-01-27.excerpt-sprot250.obo")


def _nx_ancestors(graph, relations):
    """Closure by networkx: edges point child -> parent, so descendants are ancestors."""
    sub = nx.DiGraph()
    sub.add_edges_from((u, v) for u, v, k in graph.edges(keys=True) if k in relations)
    return lambda term: ({term} | nx.descendants(sub, term)) if term in sub else {term}


def test_full_2019_release_counts(go2019):
    s = go2019.summary()
    assert s["release"] == "releases/2019-01-27"
    assert s["terms"] == 45013  # 47,347 [Term] stanzas minus 2,334 obsolete (MANIFEST)
    assert s["obsolete_terms_skipped"] == 2334
    assert s["alt_ids"] > 1000
    assert list(go2019.terms) == sorted(go2019.terms)
    for root in ("GO:0003674", "GO:0005575", "GO:0008150"):
        assert go2019.ancestors(root) == (root,)


def test_ancestor_closure_matches_networkx_is_a(go2019, raw_graph):
    expected = _nx_ancestors(raw_graph, {"is_a"})
    terms = random.Random(0).sample(list(go2019.terms), 400) + ["GO:0046872", "GO:0005515", "GO:0000001"]
    for term in terms:
        assert set(go2019.ancestors(term)) == expected(term), term
    # Every closure ends in exactly one of the three namespace roots (is_a never crosses namespaces).
    roots = {"GO:0003674", "GO:0005575", "GO:0008150"}
    for term in terms:
        assert len(roots & set(go2019.ancestors(term))) == 1


def test_ancestor_closure_with_part_of_matches_networkx(raw_graph, go2019_path):
    go = GeneOntology(raw_graph, str(go2019_path), follow_part_of=True)
    expected = _nx_ancestors(raw_graph, {"is_a", "part_of"})
    is_a_only = _nx_ancestors(raw_graph, {"is_a"})
    terms = random.Random(1).sample(list(go.terms), 300)
    grew = 0
    for term in terms:
        got = set(go.ancestors(term))
        assert got == expected(term), term
        assert is_a_only(term) <= got
        grew += is_a_only(term) < got
    assert grew > 0  # part_of adds ancestors for some terms


def test_alt_id_obsolete_and_unknown_are_counted(go2019, raw_graph):
    alt, primary = next((a, n) for n, d in raw_graph.nodes(data=True)
                        if d.get("alt_id") and d.get("is_obsolete") != "true" for a in d["alt_id"])
    obsolete = next(n for n, d in raw_graph.nodes(data=True) if d.get("is_obsolete") == "true")
    go = GeneOntology(raw_graph)
    assert go.resolve(alt) == go.index[primary]
    assert go.resolve(primary) == go.index[primary]
    assert go.resolve(obsolete) is None
    assert go.resolve("GO:9999999") is None
    assert go.resolve_many([alt, obsolete, "GO:9999999", primary]) == [go.index[primary]] * 2
    s = go.skips.as_dict()
    assert (s["resolved"], s["via_alt_id"], s["obsolete_skipped"], s["unknown_skipped"]) == (4, 2, 2, 2)
    assert s["unknown_examples"] == ["GO:9999999"]
    assert go.ancestors(alt) == go.ancestors(primary)


def test_propagate_unions_closures(go2019):
    a, b = go2019.index["GO:0046872"], go2019.index["GO:0005515"]
    got = go2019.propagate([a, b]).tolist()
    expected = sorted(set(go2019.ancestor_indices(a).tolist()) | set(go2019.ancestor_indices(b).tolist()))
    assert got == expected
    assert go2019.propagate([]).tolist() == []


def test_plain_and_gzipped_read_the_same(excerpt_path, tmp_path):
    gz = tmp_path / "excerpt.obo.gz"
    with open(excerpt_path, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    plain, zipped = read_gene_ontology(excerpt_path), read_gene_ontology(gz)
    assert plain.terms == zipped.terms and len(plain) == 576
    assert plain.ancestors("GO:0046872") == zipped.ancestors("GO:0046872")
    assert plain.release == "releases/2019-01-27"


def test_go_slim_without_data_version(tmp_path):
    slim = read_gene_ontology(require_shared("data", "go", "goslim_generic.AgBase-GAQ.obo"))
    assert len(slim) == 145 - sum(1 for t in slim.obsolete)
    assert slim.release != ""


def test_malformed_obo_has_line_number(excerpt_path, tmp_path):
    lines = excerpt_path.read_text().splitlines(keepends=True)
    idx = next(i for i, line in enumerate(lines) if line.startswith("is_a:"))
    lines[idx] = "is_a GO_0003674 (the colon is missing)\n"
    bad = tmp_path / "bad.obo"
    bad.write_text("".join(lines))
    with pytest.raises(FormatError) as err:
        read_gene_ontology(bad)
    assert err.value.line == idx + 1 and "bad.obo" in str(err.value)


def test_truncated_gzip_obo(go2019_path, tmp_path):
    bad = tmp_path / "cut.obo.gz"
    bad.write_bytes(go2019_path.read_bytes()[:200_000])
    with pytest.raises(FormatError, match="unreadable|truncated|Compressed"):
        read_gene_ontology(bad)


def test_not_an_obo_file(tmp_path):
    fasta = tmp_path / "x.obo"
    fasta.write_text(">P1 protein\nMKV\n")
    with pytest.raises(FormatError):
        read_gene_ontology(fasta)
    empty = tmp_path / "empty.obo"
    empty.write_text("format-version: 1.2\n")
    with pytest.raises(FormatError, match="no .*Term"):
        read_gene_ontology(empty)
