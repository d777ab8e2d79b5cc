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
