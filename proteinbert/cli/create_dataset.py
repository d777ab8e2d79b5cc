"""``create_dataset``: build the pretraining HDF5 from UniRef/UniProt/FASTA+TSV and the Gene Ontology.

Examples::

    create_dataset --uniref-xml uniref90.xml.gz --fasta uniref90.fasta.gz --go-obo go.obo.gz --output uniref90.h5
    create_dataset --uniprot-xml uniprot_sprot.xml.gz --go-obo go-basic.obo --output sprot.h5
    create_dataset --fasta sp.fasta.gz --go-tsv sp.go.tsv.gz --go-obo go.obo.gz --output sp.h5 --min-records 100

An existing ``--output`` is replaced only with ``--overwrite``. To (re)designate the test set of an
existing file, use ``set_test_set``.
"""

from __future__ import annotations

import dataclasses
import sys

from ..data.dataset_builder import DatasetSettings, build_dataset
from ..io_utils import claim_output
from ._common import (
    UsageError, add_unknown_residues_argument, check_inputs, make_parser, positive_int, probability, run_cli, seed_int,
    show_progress,
)

#: The library's defaults, shown by --help (one place for each).
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(DatasetSettings)}


def build_parser():
    parser = make_parser(
        "create_dataset",
        "Build a ProteinBERT pretraining dataset (HDF5, 2021 layout plus metadata) from one of three inputs: "
        "(a) --uniref-xml with --fasta (UniRef90 XML + FASTA, joined on the cluster id), "
        "(b) --uniprot-xml (UniProtKB XML, sequences inside), or (c) --fasta with --go-tsv (accession -> GO ids). "
        "GO annotations are propagated to all ancestors in --go-obo; terms with fewer than --min-records "
        "records are dropped; records are shuffled with --seed. Exit codes: 0 ok, 1 data or I/O error, 2 usage error. "
        "To change the test set of an existing file later, use set_test_set.",
        progress_bars=True)
    src = parser.add_argument_group("inputs (choose one combination)")
    src.add_argument("--uniref-xml", metavar="XML", help="UniRef XML(.gz), e.g. uniref90.xml.gz (needs --fasta)")
    src.add_argument("--uniprot-xml", metavar="XML", help="UniProtKB XML(.gz), e.g. uniprot_sprot.xml.gz")
    src.add_argument("--fasta", metavar="FASTA",
                     help="FASTA(.gz) with the sequences (with --uniref-xml or --go-tsv); ids are matched "
                          "whole, or by the accession of UniProt-style ids (sp|P12345|NAME)")
    src.add_argument("--go-tsv", metavar="TSV", help="TSV(.gz): accession<TAB>GO ids (';'-joined), needs --fasta")
    parser.add_argument("--go-obo", required=True, metavar="OBO", help="Gene Ontology in OBO 1.2 (go.obo or go-basic.obo, .gz ok)")
    parser.add_argument("--output", "-o", required=True, metavar="H5",
                        help="output .h5 (written atomically; never one of the inputs)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    parser.add_argument("--min-records", type=positive_int, default=_DEFAULTS["min_records_per_term"],
                        metavar="N", help="keep GO terms annotated to at least N records")
    parser.add_argument("--seed", type=seed_int, default=_DEFAULTS["seed"],
                        help="seed of the shuffle and the test-set draw")
    parser.add_argument("--test-ids", metavar="FILE",
                        help="file of UniProt entry names or accessions (one per line) to put in the test set")
    parser.add_argument("--test-probability", type=probability, default=_DEFAULTS["test_probability"],
                        metavar="P", help="also put each record in the test set with probability P")
    parser.add_argument("--follow-part-of", action="store_true",
                        help="propagate annotations over part_of as well as is_a")
    parser.add_argument("--fail-on-missing", action="store_true",
                        help="fail (exit 1) if an annotated entry has no sequence in the FASTA (default: count and skip)")
    parser.add_argument("--allow-obo-defects", action="store_true",
                        help="only warn about duplicate or incomplete [Term] stanzas, a truncated file and parents "
                             "without a stanza in --go-obo (default: fail, since annotations to those terms are lost); "
                             "is_a cycles always fail")
    add_unknown_residues_argument(parser)
    parser.add_argument("--temp-dir", metavar="DIR", help="scratch directory (default: next to --output)")
    parser.add_argument("--single-process", action="store_true",
                        help="parse inputs in this process (default: in a worker process, using a second core)")
    return parser


def settings_from_args(args) -> DatasetSettings:
    if args.uniref_xml and args.uniprot_xml:
        raise UsageError("give --uniref-xml or --uniprot-xml, not both")
    if args.uniref_xml:
        if not args.fasta or args.go_tsv:
            raise UsageError("--uniref-xml needs --fasta (and no --go-tsv)")
        kind, xml = "uniref", args.uniref_xml
    elif args.uniprot_xml:
        if args.fasta or args.go_tsv:
            raise UsageError("--uniprot-xml takes its sequences from the XML: drop --fasta/--go-tsv")
        kind, xml = "uniprot", args.uniprot_xml
    elif args.fasta and args.go_tsv:
        kind, xml = "fasta_tsv", None
    else:
        raise UsageError("choose an input: --uniref-xml with --fasta, --uniprot-xml, or --fasta with --go-tsv")
    return DatasetSettings(
        output=args.output, go_obo=args.go_obo, input_kind=kind, xml=xml,
        fasta=args.fasta, go_tsv=args.go_tsv if kind == "fasta_tsv" else None,
        min_records_per_term=args.min_records, seed=args.seed, test_ids_file=args.test_ids,
        test_probability=args.test_probability, follow_part_of=args.follow_part_of,
        fail_on_missing_sequences=args.fail_on_missing, temp_dir=args.temp_dir,
        progress=show_progress(args), parallel=not args.single_process,
        allow_obo_defects=args.allow_obo_defects,
        unknown_residues=args.unknown_residues,
    )


def main(argv=None) -> int:
    parser = build_parser()

    def run(args):
        settings = settings_from_args(args)
        check_inputs(files=settings.option_paths, dirs={"--temp-dir": settings.temp_dir})
        with claim_output(settings.output, settings.option_paths, "--output", overwrite=args.overwrite):
            build_dataset(settings)  # logs its summary

    return run_cli(parser, run, argv)


if __name__ == "__main__":
    from .main import run_as_command

    sys.exit(run_as_command(main))
