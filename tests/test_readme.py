"""README.md as a user guide: its commands and code blocks work as written.

* Cheap checks (no TensorFlow): every ``proteinbert <sub> --flag`` and ``bin/<name> --flag`` in a
  ```bash block exists in that subcommand's ``--help``; every ``--flag`` written anywhere in the
  README belongs to some subcommand; the two project commands are there as they must be; the README
  stands on its own (no paths outside the repository, no internal documents).
* The quickstart and the ```python blocks run, in README order, in one scratch directory, on tiny
  data and a tiny model written to ``PROTEINBERT_WEIGHTS`` (the README's code finds its weights
  there, as a user's does). The quickstart's ``proteinbert`` commands run in process through the
  console script's ``main``; fine-tuning gets extra flags for a one-epoch schedule. Python blocks
  get the textual substitutions in ``PYTHON_SUBSTITUTIONS`` (each must match, so README edits
  cannot silently dodge them).
* A ```python block that contains the comment ``# needs the released weights`` runs only when
  ``PROTEINBERT_WEIGHTS`` was set before the tests started (to the real released file); it is
  skipped otherwise.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from backbone_harness import MICRO

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
NEEDS_RELEASED = "# needs the released weights"
RELEASED_WEIGHTS = os.environ.get("PROTEINBERT_WEIGHTS")  # as set by the user, before any test

TINY_ARCH = dict(MICRO, n_annotations=8)
# Appended to the quickstart's `proteinbert finetune` line: the 2021 schedule, one epoch a stage, short.
QUICK_FINETUNE_FLAGS = ["--max-epochs", "1", "--seq-len", "64", "--batch-size", "16", "--final-seq-len", "128",
                        "--run-eagerly", "-q"]
# README text -> what the test runs instead (the same calls, a one-epoch schedule at length 64).
PYTHON_SUBSTITUTIONS = {
    "default_stages(seq_len=512, max_epochs=40)":
        "default_stages(seq_len=64, batch_size=16, max_epochs=1, final_seq_len=128)",
    "FinetuneConfig(stages=": "FinetuneConfig(run_eagerly=True, stages=",
}
# bin/ launchers that are not `proteinbert <sub>` under another name.
BIN_ALIASES = {"main_job": "run-pipeline"}
BIN_NOT_SUBCOMMANDS = {"run_tests"}  # pytest's own flags


@dataclass
class Block:
    lang: str
    code: str
    line: int  # first line of the code, 1-based
    section: str  # the "## " heading above it


def readme_blocks(text: str | None = None) -> list[Block]:
    text = README.read_text() if text is None else text
    blocks, section, lines, i = [], "", text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = line[3:].strip()
        fence = re.match(r"^```(\w*)\s*$", line)
        if fence:
            start, body = i + 1, []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            blocks.append(Block(fence.group(1), "\n".join(body) + "\n", start + 1, section))
        i += 1
    return blocks


def shell_commands(code: str) -> list[list[str]]:
    """The commands of a bash block as argv lists (continuations joined, comments dropped)."""
    joined = re.sub(r"\\\n", " ", code)
    commands = []
    for line in joined.splitlines():
        argv = shlex.split(line, comments=True)
        if argv:
            commands.append(argv)
    return commands


def subcommand_of(argv: list[str]) -> tuple[str, list[str]] | None:
    """``(subcommand or "" for the top level, its arguments)`` for a proteinbert/bin command, else None."""
    from proteinbert.cli.main import COMMANDS

    head = argv[0]
    if head == "proteinbert" or argv[:3] == ["python", "-m", "proteinbert"]:
        rest = argv[1:] if head == "proteinbert" else argv[3:]
        if not rest or rest[0].startswith("-"):
            return "", rest
        return rest[0], rest[1:]
    if head.startswith("bin/"):
        name = head[4:]
        if name in BIN_NOT_SUBCOMMANDS:
            return None
        sub = BIN_ALIASES.get(name, name.replace("_", "-"))
        assert sub in COMMANDS, f"{head}: no such launcher command"
        assert (REPO / head).is_file(), f"{head} does not exist"
        return sub, argv[1:]
    return None


def help_text(sub: str) -> str:
    from proteinbert.cli import main as entry

    if sub == "":
        return entry.build_parser().format_help()
    module, _ = entry.COMMANDS[sub]
    return importlib.import_module(f"proteinbert.cli.{module}").build_parser().format_help()


def flags_in(help_: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", help_))


# ---- cheap checks: no TensorFlow --------------------------------------------------------------------

def test_bash_flags_exist_in_each_subcommands_help():
    from proteinbert.cli.main import COMMANDS

    checked, problems = 0, []
    for block in readme_blocks():
        if block.lang not in ("bash", "sh", "shell"):
            continue
        for argv in shell_commands(block.code):
            found = subcommand_of(argv)
            if found is None:
                continue
            sub, args = found
            if sub and sub not in COMMANDS:
                problems.append(f"README.md:{block.line}: unknown subcommand {sub!r}")
                continue
            known = flags_in(help_text(sub))
            for arg in args:
                flag = arg.split("=", 1)[0]
                if flag.startswith("-") and flag != "-":
                    checked += 1
                    if flag not in known:
                        problems.append(f"README.md:{block.line}: {sub or 'proteinbert'} has no {flag}")
    assert not problems, "\n".join(problems)
    assert checked >= 20  # the parser found the README's commands


def test_every_flag_in_the_readme_belongs_to_a_command():
    """Flags in prose and tables too (``--padding``, ``--weights`` ...): each one is some subcommand's."""
    from proteinbert.cli.main import COMMANDS

    text = "\n".join(line for line in README.read_text().splitlines())
    known = flags_in(help_text(""))
    for sub in COMMANDS:
        known |= flags_in(help_text(sub))
    known |= {"-m"}  # bin/run_tests -m slow (pytest)
    written = set(re.findall(r"(?<![\w./-])(--[a-z][\w-]*)", text))
    assert written, "no flags found in README.md"
    assert written <= known, f"flags no command has: {sorted(written - known)}"


def test_the_two_project_commands_and_a_self_contained_readme():
    text = README.read_text()
    bash = [argv for b in readme_blocks(text) if b.lang == "bash" for argv in shell_commands(b.code)]
    assert ["bin/main_job"] in bash and ["bin/run_tests"] in bash
    assert (REPO / "bin" / "main_job").is_file() and (REPO / "bin" / "run_tests").is_file()
    for pattern in (r"\.\./shared", r"\bSPEC\b", r"§", r"\bissue notes?\b", r"\bissues? \d+"):
        assert not re.search(pattern, text, re.IGNORECASE), pattern
    # The documents the README sends readers to exist.
    for target in re.findall(r"\]\(((?:docs|notebooks|data)/[^)#]+)\)", text):
        assert (REPO / target).exists(), target


def test_moved_notes_are_dated_with_machine_and_versions():
    for name in ("performance.md", "design.md"):
        text = (REPO / "docs" / name).read_text()
        assert "2026-12-01" in text and "AMD EPYC" in text and "TensorFlow 2.21" in text, name


def test_substitutions_match_the_readme():
    python = "".join(b.code for b in readme_blocks() if b.lang == "python")
    for original in PYTHON_SUBSTITUTIONS:
        assert original in python, f"README.md no longer contains {original!r}; update PYTHON_SUBSTITUTIONS"


# ---- the quickstart and the Python blocks, on tiny data ---------------------------------------------

def _write_inputs(directory: Path) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    residues = np.array(list("ACDEFGHIKLMNPQRSTVWY"))

    def seqs(n):
        return ["".join(rng.choice(residues, size=int(rng.integers(20, 60)))) for _ in range(n)]

    for split, n in (("train", 32), ("valid", 16), ("test", 16)):
        s = seqs(n)
        pd.DataFrame({"seq": s, "label": [i % 2 for i in range(n)]}).to_csv(directory / f"{split}.csv", index=False)
    for name, n in (("proteins.fasta", 6), ("new.fasta", 5)):
        (directory / name).write_text("".join(f">p{i}\n{s}\n" for i, s in enumerate(seqs(n))))


def _tiny_weights(path: Path) -> Path:
    from proteinbert.model import ProteinBertBackbone
    from proteinbert.weights import save_backbone

    save_backbone(ProteinBertBackbone(**TINY_ARCH), path)
    return path


def _run_quickstart_commands(block: Block) -> list[list[str]]:
    from proteinbert.cli.main import main as proteinbert_main

    ran = []
    for argv in shell_commands(block.code):
        if argv[0] != "proteinbert":
            continue
        args = argv[1:] + (QUICK_FINETUNE_FLAGS if argv[1] == "finetune" else ["-q"])
        assert proteinbert_main(args) == 0, f"README.md:{block.line}: {shlex.join(argv)} failed"
        ran.append(argv)
    return ran


def _run_python(block: Block) -> None:
    code = block.code
    for original, replacement in PYTHON_SUBSTITUTIONS.items():
        code = code.replace(original, replacement)
    exec(compile(code, f"README.md:{block.line}", "exec"), {"__name__": "__readme__"})


def test_quickstart_and_python_blocks_run(tmp_path, monkeypatch):
    """The README in order: quickstart commands, then every ```python block (about 30-60 s on 2 cores)."""
    weights = _tiny_weights(tmp_path / "tiny.pkl")
    work = tmp_path / "work"
    work.mkdir()
    _write_inputs(work)
    monkeypatch.chdir(work)
    blocks = readme_blocks()
    quickstart = [b for b in blocks if b.section == "Quickstart" and b.lang == "bash"]
    assert len(quickstart) == 1
    python = [b for b in blocks if b.lang == "python"]
    assert len(python) >= 4

    monkeypatch.setenv("PROTEINBERT_WEIGHTS", str(weights))
    ran = _run_quickstart_commands(quickstart[0])
    assert [a[1] for a in ran] == ["embed", "finetune", "predict"]
    skipped = []
    for block in blocks:
        if block.lang != "python":
            continue
        if NEEDS_RELEASED in block.code:
            if not RELEASED_WEIGHTS:
                skipped.append(block.line)
                continue
            monkeypatch.setenv("PROTEINBERT_WEIGHTS", RELEASED_WEIGHTS)
        try:
            _run_python(block)
        finally:
            monkeypatch.setenv("PROTEINBERT_WEIGHTS", str(weights))
    # What the blocks promise was made.
    assert (work / "embeddings.h5").is_file() and (work / "predictions.csv").is_file()
    assert (work / "my_model" / "model.keras").is_file()
    if skipped:
        pytest.skip(f"blocks at README.md lines {skipped} need the released weights (set PROTEINBERT_WEIGHTS)")


@pytest.mark.slow
def test_dataset_and_pretraining_commands_end(tmp_path, monkeypatch):
    """The README's dataset + pretraining commands on data/: the dataset as written, pretraining shortened."""
    from proteinbert.cli.main import main as proteinbert_main

    block = next(b for b in readme_blocks() if b.section == "Building a dataset and pretraining" and b.lang == "bash")
    commands = [a for a in shell_commands(block.code) if a[:2] == ["proteinbert", "create-dataset"]
                and "data/sp2014_go.2k.fasta.gz" in a]
    assert len(commands) == 1
    pretrain = [a for a in shell_commands(block.code) if a[:3] == ["proteinbert", "pretrain", "sp2k.h5"]]
    assert pretrain and "--epochs" in pretrain[0]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").symlink_to(REPO / "data")
    assert proteinbert_main(commands[0][1:] + ["-q"]) == 0
    first = list(pretrain[0][1:])
    first[first.index("--epochs") + 1] = "1"
    assert proteinbert_main(first + ["--steps-per-epoch", "2", "--eval-records", "32", "--no-progress", "-q"]) == 0
    assert (tmp_path / "runs" / "sp2k" / "history.tsv").is_file()
