"""The ``proteinbert`` command: subcommands through the installed entry point, shared flags, aliases,
and TensorFlow's start-up noise."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require_shared
from proteinbert import __version__
from proteinbert.cli import main as entry

BIN = Path(sys.executable).parent
MODULES = [module for module, _ in entry.COMMANDS.values()]


def command() -> list:
    """The installed console script (``pip install`` puts it next to the interpreter)."""
    script = BIN / "proteinbert"
    if not script.is_file():
        pytest.skip("the proteinbert console script is not installed (pip install -e . registers it)")
    return [str(script)]


def run(argv, env=None, timeout=300):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


def test_help_lists_every_subcommand_and_loads_no_tensorflow():
    done = run(command() + ["--help"])
    assert done.returncode == 0, done.stderr
    for name in entry.COMMANDS:
        assert f"  {name} " in done.stdout
    code = ("import sys; from proteinbert.cli.main import main; rc = main(['--help']); "
            "rc2 = main(['embed', '--help']); print(rc, rc2, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    done = run([sys.executable, "-c", code])
    assert done.stdout.split()[-4:] == ["0", "0", "False", "False"], done.stderr


def test_version_and_usage_errors():
    assert run(command() + ["--version"]).stdout.strip() == f"proteinbert {__version__}"
    done = run([sys.executable, "-m", "proteinbert", "--version"])
    assert done.returncode == 0 and done.stdout.strip() == f"proteinbert {__version__}"
    assert entry.main([]) == 2
    assert entry.main(["no-such-command"]) == 2


@pytest.mark.parametrize("name", list(entry.COMMANDS))
def test_each_subcommand_through_the_installed_entry_point(name):
    done = run(command() + [name, "--help"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: proteinbert {name} ")
    for flag in ("-q, --quiet", "-v, --verbose", "--version"):
        assert flag in done.stdout
    # The bin/ spelling (create_dataset) names the subcommand too.
    done = run(command() + [entry.COMMANDS[name][0], "--version"])
    assert done.stdout.strip() == f"proteinbert {__version__}", done.stderr


@pytest.mark.parametrize("module", MODULES)
def test_python_m_of_every_cli_module_runs_its_main(module):
    # No module may exit 0 without doing its job: an unknown option must reach its parser.
    done = run([sys.executable, "-m", f"proteinbert.cli.{module}", "--no-such-option"])
    assert done.returncode == 2
    assert f"usage: proteinbert {module.replace('_', '-')}" in done.stderr


def test_bin_launchers_are_thin_wrappers_that_work_without_activation(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no virtual environment active
    for name, (module, _) in entry.COMMANDS.items():
        launcher = repo / "bin" / module
        done = run([str(launcher), "--version"], env=env)
        assert done.returncode == 0, (launcher, done.stderr)
        assert done.stdout.strip() == f"proteinbert {__version__}"


def test_old_spellings_still_work_but_are_hidden():
    from proteinbert.cli import benchmark_suite, convert_weights, finetune, predict, pretrain, run_pipeline, set_test_set

    parser = finetune.build_parser()
    for argv in (["--train", "t.csv", "--out", "m"], ["-i", "t.csv", "-o", "m"], ["--input", "t.csv", "--output", "m"]):
        args = parser.parse_args(argv + ["--from-scratch"])
        assert (args.train, args.out) == ("t.csv", "m")
    assert "--out OUT" not in parser.format_help()
    args = predict.build_parser().parse_args(["model", "-i", "in.fa", "-o", "p.csv"])
    assert (args.model_dir, args.input, args.output) == ("model", "in.fa", "p.csv")
    assert predict.build_parser().parse_args(["model", "in.fa", "-o", "p.csv"]).input == "in.fa"
    args = convert_weights.build_parser().parse_args(["-i", "a.pkl", "--output", "b.keras"])
    assert (args.source, args.destination) == ("a.pkl", "b.keras")
    assert convert_weights.build_parser().parse_args(["a.pkl", "b.keras"]).destination == "b.keras"
    for parser in (pretrain.build_parser(), run_pipeline.build_parser()):
        extra = ["d.h5"] if parser.prog.endswith("pretrain") else []
        assert parser.parse_args(extra + ["--output-dir", "o"]).output_dir == "o"
        assert parser.parse_args(extra + ["--output", "o"]).output_dir == "o"
        assert "--output-dir OUTPUT_DIR" not in parser.format_help()
    assert pretrain.build_parser().parse_args(["-i", "d.h5", "-o", "o"]).dataset == "d.h5"
    assert set_test_set.build_parser().parse_args(["--input", "d.h5"]).dataset == "d.h5"
    assert benchmark_suite.build_parser().parse_args(["--out", "r"]).out == "r"


def test_positional_given_twice_or_not_at_all_is_a_usage_error(capsys):
    from proteinbert.cli import predict

    with pytest.raises(SystemExit) as info:
        predict.build_parser().parse_args(["model", "a.fa", "-i", "b.fa", "-o", "p.csv"])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        predict.build_parser().parse_args(["model", "-o", "p.csv"])
    assert "INPUT (or -i/--input)" in capsys.readouterr().err


def test_the_noise_filter_keeps_errors_and_python_output():
    text = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
            "I0000 00:00:1796119208.117925    5903 port.cc:153] oneDNN custom operations are on.\n"
            "I0000 00:00:1796119208.117925    5903 cpu_feature_guard.cc:227] This TensorFlow binary is optimized\n"
            "To enable the following instructions: AVX2 FMA, rebuild TensorFlow.\n"
            "/x/y.py:3: UserWarning: something the user should see\n"
            "E0000 00:00:1796119211.300196    5903 cuda_platform.cc:52] a real error\n")
    assert entry._drop_info_and_warning_lines(text) == (
        "/x/y.py:3: UserWarning: something the user should see\n"
        "E0000 00:00:1796119211.300196    5903 cuda_platform.cc:52] a real error\n")


_ABSL_NOISE = re.compile(r"^[IW]\d{4} |absl::InitializeLog|cuInit", re.M)


def test_a_command_prints_no_tensorflow_start_up_noise(tmp_path, fixtures_dir):
    fasta = tmp_path / "in.fasta"
    fasta.write_text(">p1\nMKVLAGHHEEKK\n>p2\nACDEFGHIKLMNPQRSTVWY\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    # The weights come from $PROTEINBERT_WEIGHTS: embed's --weights is optional.
    env["PROTEINBERT_WEIGHTS"] = str(fixtures_dir / "small_lamb.pkl")
    done = run(command() + ["embed", "-i", str(fasta), "-o", str(tmp_path / "out.h5"), "-q"], env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.h5").is_file()
    assert not _ABSL_NOISE.search(done.stderr), done.stderr


# -- one vocabulary: defaults, help texts and shared flags in every subcommand -----------------------
def _parser(name):
    import importlib

    return importlib.import_module(f"proteinbert.cli.{entry.COMMANDS[name][0]}").build_parser()


def _listed(parser):
    """The arguments --help lists (hidden ones, such as --no-progress, left out)."""
    import argparse

    return [a for a in parser._actions if a.help is not argparse.SUPPRESS]


@pytest.mark.parametrize("name", list(entry.COMMANDS))
def test_help_shows_the_default_of_every_option(name):
    from proteinbert.cli._common import default_text

    parser = _parser(name)
    formatter = parser._get_formatter()  # what format_help() uses for each argument
    checked = 0
    for action in _listed(parser):
        shown = default_text(action)
        if shown is None:
            continue
        text = " ".join(formatter._format_action(action).split())
        assert "default" in text.lower(), f"{name} {action.option_strings[0]}: {text}"
        if "default" not in (action.help or "").lower():
            assert f"default: {shown}" in text, text
        written = re.search(r"\bdefault:? (-?\d[\d.]*(?:e-?\d+)?)\b", action.help or "")
        if written and isinstance(action.default, (int, float)) and not isinstance(action.default, bool):
            assert float(written.group(1)) == float(action.default), f"{name} {action.option_strings[0]}: stale {text}"
        checked += 1
    assert checked > 0 or name == "convert-weights"


def test_the_default_note_reads_as_one_sentence():
    from proteinbert.cli._common import make_parser

    parser = make_parser("x", "")
    parser.add_argument("--every", type=int, default=1, help="evaluate every N epochs (0: never)")
    parser.add_argument("--lr", type=float, default=2e-4, help="learning rate")
    parser.add_argument("--col", default="seq")
    parser.add_argument("--size", type=int, default=8, help="batch size (default 8)")
    text = " ".join(parser.format_help().split())
    assert "evaluate every N epochs (0: never; default: 1)" in text
    assert "learning rate (default: 0.0002)" in text
    assert "--col COL default: seq" in text
    assert text.endswith("batch size (default 8)") and "(default: 8)" not in text


@pytest.mark.parametrize("name", list(entry.COMMANDS))
def test_every_option_has_a_help_text(name):
    missing = [(a.option_strings or [a.dest])[0] for a in _listed(_parser(name)) if not (a.help or "").strip()]
    assert missing == [], f"proteinbert {name}: no help text for {', '.join(missing)}"


@pytest.mark.parametrize("name", list(entry.COMMANDS))
def test_the_shared_flags_are_spelt_the_same_everywhere(name):
    flags = {option: action for action in _parser(name)._actions for option in action.option_strings}
    for short, long in (("-q", "--quiet"), ("-v", "--verbose"), ("-o", "--output")):
        assert flags[short] is flags[long], (name, short, long)
    assert "--version" in flags
    if "-i" in flags or "--input" in flags:
        assert flags["-i"] is flags["--input"]
    if "--overwrite" in flags:
        assert flags["--overwrite"].default is False and flags["--overwrite"].nargs == 0


PROGRESS_ARGV = {"create_dataset": ["--uniprot-xml", "u.xml", "--go-obo", "go.obo", "-o", "d.h5"],
                 "pretrain": ["d.h5", "-o", "run"], "set_test_set": ["d.h5", "--test-probability", "0.1"]}


@pytest.mark.parametrize("module", sorted(PROGRESS_ARGV))
def test_quiet_turns_progress_bars_off_and_no_progress_still_works(module):
    import importlib

    from proteinbert.cli._common import show_progress

    parser = importlib.import_module(f"proteinbert.cli.{module}").build_parser()
    argv = PROGRESS_ARGV[module]
    assert show_progress(parser.parse_args(argv))
    assert not show_progress(parser.parse_args(argv + ["-q"]))
    old = parser.parse_args(argv + ["--no-progress"])  # the older spelling: bars off, log lines kept
    assert not show_progress(old) and not old.quiet
    help_text = parser.format_help()
    assert "--no-progress" not in help_text and "no progress bars" in help_text


def test_quiet_create_dataset_draws_no_progress_bar(tmp_path, capsys):
    from proteinbert.cli import create_dataset

    (tmp_path / "x.fa").write_text(">P1\nMKVLAAGIVA\n>P2\nMSTNPKPQRK\n")
    (tmp_path / "x.tsv").write_text("P1\tGO:0000002\nP2\tGO:0000002\n")
    (tmp_path / "go.obo").write_text("format-version: 1.2\n\n[Term]\nid: GO:0000001\nname: root\n"
                                     "namespace: molecular_function\n\n[Term]\nid: GO:0000002\nname: child\n"
                                     "namespace: molecular_function\nis_a: GO:0000001 ! root\n")
    argv = ["--fasta", str(tmp_path / "x.fa"), "--go-tsv", str(tmp_path / "x.tsv"), "--go-obo",
            str(tmp_path / "go.obo"), "--min-records", "1", "--single-process"]
    capsys.readouterr()
    assert create_dataset.main(argv + ["-o", str(tmp_path / "a.h5")]) == 0
    loud = capsys.readouterr().err
    assert "write HDF5" in loud and " rec" in loud  # the bar (tqdm) and the log lines go to stderr
    assert create_dataset.main(argv + ["-o", str(tmp_path / "b.h5"), "-q"]) == 0
    quiet = capsys.readouterr().err
    assert "write HDF5" not in quiet and " rec" not in quiet and "INFO" not in quiet
    assert create_dataset.main(argv + ["-o", str(tmp_path / "c.h5"), "--no-progress"]) == 0
    old = capsys.readouterr().err
    assert "write HDF5" not in old and "INFO" in old


# -- inputs are checked before TensorFlow starts --------------------------------------------------
_WITHOUT_TF = ("import sys; from proteinbert.cli.main import main; rc = main(sys.argv[1:]); "
               "print('exit', rc, 'tensorflow' in sys.modules)")


@pytest.mark.parametrize("argv,code,message", [
    (["create-dataset", "--fasta", "no.fa", "--go-tsv", "x.tsv", "--go-obo", "go.obo", "-o", "o.h5"], 1,
     "--fasta no.fa does not exist"),
    (["create-dataset", "--fasta", "model", "--go-tsv", "x.tsv", "--go-obo", "go.obo", "-o", "o.h5"], 1,
     "--fasta model is a directory, not a file"),
    (["create-dataset", "--fasta", "x.tsv", "--go-tsv", "x.tsv", "--go-obo", "go.obo", "-o", "w.pkl"], 2,
     "--output w.pkl exists; pass --overwrite"),
    (["set-test-set", "no.h5", "--test-probability", "0.5"], 1, "H5 no.h5 does not exist"),
    (["set-test-set", "-i", "x.tsv", "--test-ids", "no.txt", "-o", "copy.h5"], 1, "--test-ids no.txt does not exist"),
    (["pretrain", "no.h5", "-o", "run"], 1, "DATASET no.h5 does not exist"),
    (["pretrain", "x.tsv", "-o", "run", "--init-weights", "no.pkl"], 1, "--init-weights no.pkl does not exist"),
    (["pretrain", "x.tsv", "-o", "w.pkl"], 2, "--output-dir w.pkl exists and is not a directory"),
    (["predict", "model", "no.csv", "-o", "p.csv"], 1, "INPUT no.csv does not exist"),
    (["predict", "no_model", "x.tsv", "-o", "p.csv"], 1, "MODEL_DIR no_model does not exist"),
    (["predict", "model", "x.tsv", "-o", "w.pkl"], 2, "--output w.pkl exists; pass --overwrite"),
    (["convert-weights", "no.pkl", "out.keras"], 1, "SOURCE no.pkl does not exist"),
    (["convert-weights", "w.pkl", "x.tsv"], 2, "DESTINATION x.tsv exists; pass --overwrite"),
    (["benchmark-suite", "--from-scratch", "--data-dir", "no_dir", "-o", "t"], 1, "--data-dir no_dir does not exist"),
    (["benchmark-suite", "--from-scratch", "--data-dir", "x.tsv", "-o", "t"], 1, "--data-dir x.tsv is not a directory"),
    (["run-pipeline", "--data-dir", "no_dir", "-o", "out"], 1, "--data-dir no_dir does not exist"),
    (["finetune", "-i", "no.csv", "--from-scratch", "-o", "ft"], 1, "--train no.csv does not exist"),
    (["finetune", "-i", "x.tsv", "--valid", "model", "--from-scratch", "-o", "ft"], 1,
     "--valid model is a directory, not a file"),
    (["export", "no_model", "out.onnx"], 1, "SOURCE no_model does not exist"),
    (["embed", "-i", "no.fa", "--weights", "w.pkl", "-o", "e.h5"], 1, "--input no.fa does not exist"),
    (["convert-weights", "w.pkl", "out.txt"], 2, "unknown weights format for out.txt"),
    (["benchmark-suite", "--from-scratch", "--data-dir", "model", "-o", "t"], 1, "nothing to run: none of the"),
    (["run-pipeline", "--fasta", "no.fa", "--go-tsv", "x.tsv", "--go-obo", "go.obo", "-o", "out"], 1,
     "--fasta no.fa does not exist"),
])
def test_bad_inputs_fail_before_tensorflow_starts(argv, code, message, tmp_path):
    for name in ("x.tsv", "go.obo", "w.pkl"):
        (tmp_path / name).write_text("x\n")
    (tmp_path / "model").mkdir()
    before = sorted(os.listdir(tmp_path))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROTEINBERT_")}
    done = subprocess.run([sys.executable, "-c", _WITHOUT_TF, *argv], capture_output=True, text=True, timeout=300,
                          env=env, cwd=tmp_path)
    assert done.stdout.split()[-3:] == ["exit", str(code), "False"], (done.stdout, done.stderr)
    assert message in done.stderr and "Traceback" not in done.stderr
    assert sorted(os.listdir(tmp_path)) == before  # nothing written, no lock file left
    assert (tmp_path / "w.pkl").read_text() == "x\n"
