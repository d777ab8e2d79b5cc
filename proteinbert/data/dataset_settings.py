"""What ``create_dataset`` is asked to build (:class:`DatasetSettings`, checked when made) and what
it reports having built (:class:`BuildSummary`).

>>> settings = DatasetSettings(output="out.h5", go_obo="go.obo", input_kind="fasta_tsv",
...                            fasta="sp.fasta", go_tsv="sp.go.tsv")
>>> sorted(settings.input_paths), settings.min_records_per_term
(['fasta', 'go_tsv'], 100)
>>> DatasetSettings(output="out.h5", go_obo="go.obo", input_kind="uniref", xml="u.xml")
Traceback (most recent call last):
proteinbert.errors.InputError: input_kind='uniref' needs fasta
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import InputError
from ..tokenizer import DEFAULT_UNKNOWN_RESIDUES, UNKNOWN_RESIDUE_POLICIES

INPUT_KINDS = ("uniref", "uniprot", "fasta_tsv")


@dataclass(frozen=True)
class DatasetSettings:
    """Everything ``build_dataset`` needs. Paths may be ``str`` or ``Path``.

    ``input_kind``: ``"uniref"`` (``xml`` = UniRef XML + ``fasta`` = UniRef FASTA), ``"uniprot"``
    (``xml`` = UniProtKB XML with sequences) or ``"fasta_tsv"`` (``fasta`` + ``go_tsv``).
    Test-set ids are matched against UniProtKB entry names and accessions.
    """

    output: Path
    go_obo: Path
    input_kind: str
    xml: Path | None = None
    fasta: Path | None = None
    go_tsv: Path | None = None
    min_records_per_term: int = 100
    seed: int = 0
    test_ids_file: Path | None = None
    test_probability: float = 0.0
    follow_part_of: bool = False
    fail_on_missing_sequences: bool = False
    temp_dir: Path | None = None
    records_per_bucket: int = 100_000
    progress: bool = True
    parallel: bool = True  # parse each input in a worker process (both cores); False: one process
    allow_obo_defects: bool = False  # duplicate/incomplete stanzas, truncation, dangling parents: warn only
    unknown_residues: str = DEFAULT_UNKNOWN_RESIDUES  # non-letters in a sequence: "warn" (read as <OTHER>) or "error"

    def __post_init__(self):
        for name in ("output", "go_obo", "xml", "fasta", "go_tsv", "test_ids_file", "temp_dir"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        needs = {"uniref": ("xml", "fasta"), "uniprot": ("xml",), "fasta_tsv": ("fasta", "go_tsv")}
        if self.input_kind not in needs:
            raise InputError(f"input_kind must be one of {', '.join(INPUT_KINDS)}. Received: input_kind={self.input_kind!r}")
        missing = [n for n in needs[self.input_kind] if getattr(self, n) is None]
        if missing:
            raise InputError(f"input_kind={self.input_kind!r} needs {' and '.join(missing)}")
        extra = [n for n in ("xml", "fasta", "go_tsv") if n not in needs[self.input_kind] and getattr(self, n) is not None]
        if extra:
            raise InputError(f"input_kind={self.input_kind!r} does not use {' or '.join(extra)}")
        if int(self.min_records_per_term) < 1:
            raise InputError(f"min_records_per_term must be ≥ 1. Received: min_records_per_term={self.min_records_per_term}")
        if not 0.0 <= float(self.test_probability) <= 1.0:
            raise InputError(f"test_probability must be in [0, 1]. Received: test_probability={self.test_probability}")
        if int(self.records_per_bucket) < 1:
            raise InputError(f"records_per_bucket must be ≥ 1. Received: records_per_bucket={self.records_per_bucket}")
        if self.unknown_residues not in UNKNOWN_RESIDUE_POLICIES:
            raise InputError(f"unknown_residues must be one of {', '.join(UNKNOWN_RESIDUE_POLICIES)}. "
                             f"Received: unknown_residues={self.unknown_residues!r}")

    @property
    def input_paths(self) -> dict[str, Path]:
        roles = {"uniref": (("uniref_xml", self.xml), ("fasta", self.fasta)),
                 "uniprot": (("uniprot_xml", self.xml),),
                 "fasta_tsv": (("fasta", self.fasta), ("go_tsv", self.go_tsv))}[self.input_kind]
        return dict(roles)

    @property
    def option_paths(self) -> dict:
        """Every input file by its ``create_dataset`` option (for messages and the output check)."""
        xml_option = "--uniref-xml" if self.input_kind == "uniref" else "--uniprot-xml"
        return {xml_option: self.xml, "--fasta": self.fasta, "--go-tsv": self.go_tsv, "--go-obo": self.go_obo,
                "--test-ids": self.test_ids_file}


@dataclass(frozen=True)
class BuildSummary:
    """What was written and everything that was skipped on the way."""

    output: str
    n_records: int
    n_annotations: int
    n_annotated_records: int
    n_test_records: int
    n_source_records: int
    n_missing_sequences: int
    missing_sequence_examples: tuple
    n_sequences_without_entry: int
    test_ids_listed: int
    test_ids_not_found: int
    go: dict
    go_annotations: dict
    inputs: tuple
    seconds: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        lines = [f"wrote {self.output}: {self.n_records:,} records × {self.n_annotations:,} GO terms "
                 f"({self.n_annotated_records:,} records with ≥ 1 kept term, {self.n_test_records:,} in the test set)"]
        if self.n_missing_sequences:
            lines.append(f"{self.n_missing_sequences:,} annotated entries had no sequence in the FASTA and were skipped, "
                         f"e.g. {', '.join(self.missing_sequence_examples)}")
        if self.n_sequences_without_entry:
            lines.append(f"{self.n_sequences_without_entry:,} FASTA sequences had no annotation entry and were skipped")
        if self.test_ids_listed:
            lines.append(f"test ids: {self.test_ids_listed:,} listed, {self.test_ids_not_found:,} not found in the dataset")
        g = self.go_annotations
        lines.append(f"GO annotations: {g['resolved']:,} resolved ({g['via_alt_id']:,} via alt_id), "
                     f"{g['obsolete_skipped']:,} obsolete and {g['unknown_skipped']:,} unknown skipped")
        return "\n".join(lines)
