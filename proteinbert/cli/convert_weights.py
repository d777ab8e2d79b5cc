"""``convert_weights``: between the released ``.pkl`` format and Keras ``.keras`` / ``.weights.h5``."""

from __future__ import annotations

import json
import sys

from ._common import UsageError, make_parser, run_cli


def build_parser():
    p = make_parser("convert_weights", "Convert ProteinBERT weights between .pkl (2021 format), .keras and "
                                       ".weights.h5; the format is chosen by each file's extension.")
    p.add_argument("source", help="input weights (.pkl, .keras or .weights.h5)")
    p.add_argument("destination", help="output weights (.pkl, .keras or .weights.h5), written atomically")
    p.add_argument("--architecture", help="JSON of ProteinBertBackbone keyword arguments; needed to read "
                                          ".weights.h5, e.g. '{\"n_annotations\": 8943}'")
    p.add_argument("--overwrite", action="store_true", help="replace an existing destination")
    return p


def run(args) -> int:
    from pathlib import Path

    from ..weights.convert import load_backbone, save_backbone, weights_format

    try:
        weights_format(args.source)
        weights_format(args.destination)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if Path(args.destination).exists() and not args.overwrite:
        raise UsageError(f"destination {args.destination} exists; pass --overwrite to replace it")
    architecture = None
    if args.architecture:
        try:
            architecture = json.loads(args.architecture)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--architecture is not valid JSON: {exc}. Received: {args.architecture!r}") from exc
    elif args.source.endswith(".weights.h5"):
        raise UsageError("reading .weights.h5 needs --architecture")
    model = load_backbone(args.source, architecture=architecture)
    save_backbone(model, args.destination)
    print(f"wrote {args.destination} ({model.count_params():,} parameters, {json.dumps(model.architecture)})")
    return 0


def main(argv=None) -> int:
    return run_cli(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
