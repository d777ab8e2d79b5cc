"""``export``: a fine-tuned model directory or a backbone as ONNX or a TensorFlow SavedModel.

Example::

    proteinbert export signalp_model signalp_model.onnx
    proteinbert export epoch_92400_sample_23500000.pkl embedder.onnx --layers last
"""

from __future__ import annotations

import os

import sys

from ..errors import InputError
from ..io_utils import claim_output
from ._common import (
    UsageError, add_positional, add_threads_argument, apply_threads, check_inputs, make_parser, parse_architecture,
)
from ._common import positive_int, run_cli


def build_parser():
    from ..export import DEFAULT_OPSET, VERIFY_TOLERANCE

    p = make_parser("export", "Export a fine-tuned model directory or a backbone to ONNX or a TensorFlow SavedModel "
                              "(inputs: token ids and GO annotations; see the proteinbert.export module).")
    add_positional(p, "source", "-i", "--input",
                   help="a fine-tuned model directory (from finetune), or backbone weights (.pkl, .keras, "
                        ".weights.h5 with --architecture, or a pretraining save directory)")
    add_positional(p, "destination", "-o", "--output",
                   help="the ONNX file (.onnx) or SavedModel directory to write, atomically")
    p.add_argument("--format", choices=("onnx", "savedmodel"),
                   help="default: onnx for a .onnx destination, else savedmodel")
    p.add_argument("--layers", choices=("last", "all"),
                   help="backbones: export the hidden representations (as embed --layers) instead of the "
                        "pretraining outputs (default: the pretraining outputs)")
    p.add_argument("--opset", type=positive_int, default=DEFAULT_OPSET,
                   help="ONNX operator set, 13 or above (default: %(default)s)")
    p.add_argument("--no-verify", action="store_true",
                   help=f"skip running the export on two check batches against Keras (default: run them and "
                        f"refuse a difference above {VERIFY_TOLERANCE:g}; ONNX files need onnxruntime for that)")
    p.add_argument("--architecture", help="JSON of ProteinBertBackbone keyword arguments; needed to read "
                                          ".weights.h5, e.g. '{\"n_annotations\": 8943}' (default: none)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing destination")
    add_threads_argument(p)
    return p


def run(args) -> int:
    # SOURCE is a file (weights) or a directory (a fine-tuned model, a pretraining save)
    check_inputs(**({"dirs": {"SOURCE": args.source}} if os.path.isdir(args.source) else {"files": {"SOURCE": args.source}}))
    from ..export import export_model, format_for

    try:
        fmt = format_for(args.destination, args.format)
    except InputError as exc:
        raise UsageError(str(exc)) from None
    if args.opset < 13:
        raise UsageError(f"--opset must be 13 or above. Received: {args.opset}")
    architecture = parse_architecture(args.architecture) if args.architecture else None
    if args.source.endswith(".weights.h5") and architecture is None:
        raise UsageError("reading .weights.h5 needs --architecture")
    kind = "file" if fmt == "onnx" else "dir"
    with claim_output(args.destination, {"SOURCE": args.source}, "DESTINATION", overwrite=args.overwrite, kind=kind):
        apply_threads(args)
        result = export_model(args.source, args.destination, format=fmt, layers=args.layers, opset=args.opset,
                              overwrite=args.overwrite, verify=not args.no_verify, architecture=architecture)
    checked = ("not checked against Keras" if result.max_abs_difference is None
               else f"largest difference from Keras {result.max_abs_difference:.2g}")
    print(f"wrote {result.path} ({result.format}, {result.kind}; outputs {', '.join(result.outputs)}; {checked})")
    return 0


def main(argv=None) -> int:
    return run_cli(build_parser(), run, argv)


if __name__ == "__main__":
    from .main import run_as_command

    sys.exit(run_as_command(main))
