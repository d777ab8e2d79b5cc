"""``convert_weights``: between the released ``.pkl`` format and Keras ``.keras`` / ``.weights.h5``."""

from __future__ import annotations

import json
import sys

from ..io_utils import claim_output
from ._common import UsageError, check_inputs, make_parser, parse_architecture, run_cli
from ._common import add_positional


def build_parser():
    p = make_parser("convert_weights", "Convert ProteinBERT weights between .pkl (2021 format), .keras and "
                                       ".weights.h5; the format is chosen by each file's extension.")
    add_positional(p, "source", "-i", "--input",
                   help="input weights (.pkl, .keras or .weights.h5), or a pretraining save directory "
                        "(epoch_E_sample_S/: its .pkl)")
    add_positional(p, "destination", "-o", "--output",
                   help="output weights (.pkl, .keras or .weights.h5), written atomically")
    p.add_argument("--architecture", metavar="JSON",
                   help="JSON of ProteinBertBackbone keyword arguments; needed to read .weights.h5, "
                        "e.g. '{\"n_annotations\": 8943}'")
    p.add_argument("--overwrite", action="store_true", help="replace an existing destination")
    return p


def run(args) -> int:
    architecture = None
    if args.architecture:
        architecture = parse_architecture(args.architecture)
    elif args.source.endswith(".weights.h5"):
        raise UsageError("reading .weights.h5 needs --architecture")
    from ..weights.locate import weights_file, weights_format

    args.source = str(weights_file(args.source))  # a pretraining save directory: its .pkl, as every loader reads it
    check_inputs(files={"SOURCE": args.source})
    # Claimed before Keras loads, so a refused destination costs no TensorFlow start-up.
    with claim_output(args.destination, {"SOURCE": args.source}, "DESTINATION", overwrite=args.overwrite):
        try:  # also before Keras loads
            weights_format(args.source)
            weights_format(args.destination)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        from ..weights.convert import load_backbone, save_backbone

        model = load_backbone(args.source, architecture=architecture)
        save_backbone(model, args.destination)
    print(f"wrote {args.destination} ({model.count_params():,} parameters, {json.dumps(model.architecture)})")
    return 0


def main(argv=None) -> int:
    return run_cli(build_parser(), run, argv)


if __name__ == "__main__":
    from .main import run_as_command

    sys.exit(run_as_command(main))
