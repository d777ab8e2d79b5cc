"""Streaming readers for UniRef XML (UniRef50/90/100) and UniProtKB XML, plain or gzipped.

Both use lxml ``iterparse`` on ``entry`` elements and clear each entry (and drop the cleared
siblings) once read, so memory stays flat however large the file. Only the fields the dataset
builder needs are extracted; everything else in an entry is skipped.

* UniRef: ``XmlRecord(key=<entry id, e.g. UniRef90_P0C9F0>, name=<representativeMember/dbReference/@id>,
  accession=<its 'UniProtKB accession' property or ''>, go_ids=<entry-level GO MF/BP/CC properties>,
  seq=<representativeMember/sequence or None>, line)``. The ``key`` is the FASTA id of the cluster
  (the join key: never rebuild it from the member name).
* UniProtKB: ``key=accession=<first accession>``, ``name=<entry name>``, ``go_ids`` from
  ``dbReference[@type="GO"]``, ``seq`` from ``sequence``.

Malformed XML raises :class:`~proteinbert.errors.FormatError` with the line number.

>>> import io
>>> xml = io.BytesIO(b'''<UniRef90 xmlns="http://uniprot.org/uniref"><entry id="UniRef90_P1">
... <property type="GO Molecular Function" value="GO:0005515"/>
... <representativeMember><dbReference type="UniProtKB ID" id="ABC_HUMAN">
... <property type="UniProtKB accession" value="P1"/></dbReference>
... <sequence length="3">MKV</sequence></representativeMember></entry></UniRef90>''')
>>> list(parse_uniref_xml(xml))
[XmlRecord(key='UniRef90_P1', name='ABC_HUMAN', accession='P1', go_ids=('GO:0005515',), seq='MKV', line=1)]
"""

from __future__ import annotations

from typing import BinaryIO, Iterator, NamedTuple

from lxml import etree

from ..errors import FormatError

UNIREF_NS = "http://uniprot.org/uniref"
UNIPROT_NS = "http://uniprot.org/uniprot"
UNIREF_GO_TYPES = frozenset({"GO Molecular Function", "GO Biological Process", "GO Cellular Component"})


class XmlRecord(NamedTuple):
    key: str
    name: str
    accession: str
    go_ids: tuple
    seq: str | None
    line: int


def _iterparse(source: BinaryIO, tag: str):
    # No DTD, no entities, no network: the input is data, not a document to be trusted.
    return etree.iterparse(source, events=("end",), tag=tag, resolve_entities=False, load_dtd=False,
                           no_network=True, huge_tree=True, remove_comments=True)


def _release(entry) -> None:
    entry.clear(keep_tail=True)
    parent = entry.getparent()
    if parent is not None:
        while entry.getprevious() is not None:
            del parent[0]


def _run(source: BinaryIO, path: str, tag: str, extract, kind: str) -> Iterator[XmlRecord]:
    context = _iterparse(source, tag)
    n = 0
    try:
        for _, entry in context:
            n += 1
            rec = extract(entry, path)
            _release(entry)
            yield rec
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if exc.lineno else None
        raise FormatError(f"malformed XML ({exc.msg})", path, line) from exc
    if n == 0:
        root = getattr(context, "root", None)
        found = root.tag if root is not None else "nothing"
        raise FormatError(f"no {tag} elements found (root element is {found}); is this a {kind} XML file?", path)


_UR_PROP, _UR_REP, _UR_DBREF, _UR_SEQ = (f"{{{UNIREF_NS}}}{t}" for t in ("property", "representativeMember",
                                                                       "dbReference", "sequence"))


def _uniref_entry(entry, path: str, with_sequence: bool = True) -> XmlRecord:
    # Tag-filtered child iteration: lxml only builds Python proxies for the elements we look at.
    key = entry.get("id")
    if not key:
        raise FormatError("UniRef <entry> without an id attribute", path, entry.sourceline)
    go_ids = tuple(p.get("value").strip() for p in entry.iterchildren(_UR_PROP)
                   if p.get("type") in UNIREF_GO_TYPES and p.get("value"))
    rep = entry.find(_UR_REP)
    dbref = rep.find(_UR_DBREF) if rep is not None else None
    name = dbref.get("id") if dbref is not None else None
    if not name:
        raise FormatError(f"entry {key!r} has no representativeMember/dbReference id", path, entry.sourceline)
    accession = ""
    for p in dbref.iterchildren(_UR_PROP):
        if p.get("type") == "UniProtKB accession":
            accession = p.get("value") or ""
            break
    seq = None
    if with_sequence:
        seq_el = rep.find(_UR_SEQ)
        seq = "".join(seq_el.text.split()) if seq_el is not None and seq_el.text else None
    return XmlRecord(key, name, accession, go_ids, seq, entry.sourceline)


def _uniprot_entry(entry, path: str) -> XmlRecord:
    acc_tag, name_tag, dbref, seq_tag = (f"{{{UNIPROT_NS}}}{t}" for t in ("accession", "name", "dbReference",
                                                                           "sequence"))
    accession = name = ""
    seq = None
    go_ids = []
    for child in entry:
        tag = child.tag
        if tag == dbref:
            if child.get("type") == "GO":
                go_ids.append(child.get("id"))
        elif tag == acc_tag:
            if not accession and child.text:
                accession = child.text.strip()
        elif tag == name_tag:
            if not name and child.text:
                name = child.text.strip()
        elif tag == seq_tag and child.text:
            seq = "".join(child.text.split())
    if not accession:
        raise FormatError("UniProtKB <entry> without an <accession>", path, entry.sourceline)
    if not seq:
        raise FormatError(f"entry {accession!r} has no <sequence>", path, entry.sourceline)
    return XmlRecord(accession, name or accession, accession, tuple(g for g in go_ids if g), seq,
                     entry.sourceline)


def parse_uniref_xml(source: BinaryIO, path: str = "<stream>", with_sequence: bool = True) -> Iterator[XmlRecord]:
    """Records from an open binary UniRef XML stream (decompressed).

    ``with_sequence=False`` leaves ``seq`` as None (faster when the FASTA supplies the sequences).
    """
    extract = _uniref_entry if with_sequence else (lambda entry, p: _uniref_entry(entry, p, False))
    return _run(source, path, f"{{{UNIREF_NS}}}entry", extract, "UniRef")


def parse_uniprot_xml(source: BinaryIO, path: str = "<stream>") -> Iterator[XmlRecord]:
    """Records from an open binary UniProtKB XML stream (decompressed)."""
    return _run(source, path, f"{{{UNIPROT_NS}}}entry", _uniprot_entry, "UniProtKB")

