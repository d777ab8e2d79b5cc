"""`proteinbert predict-go`: GO terms from a pretraining save, as a TSV; the checkpoint's GO list, the
padding, threshold/top-k, names from an OBO, the refusal of weights without GO ids, output safety."""

import csv
import gzip
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from proteinbert.cli.main import main as proteinbert_main
from proteinbert.data.pretraining_batches import PretrainingDataSettings
from proteinbert.go_prediction import TSV_COLUMNS, padded_length, select_go_terms
from proteinbert.training import checkpoints
from proteinbert.training.pretraining import PretrainingSettings, pretrain

from conftest import REPO
from pretraining_h5 import read_sp2014, write_pretraining_h5
from backbone_harness import tiny_sizes

ARCH = tiny_sizes(n_blocks=1)
EPISODES = ((32, 8), (64, 4))
RELEASE = "releases/2019-01-27"
OBO = REPO / "data" / "go-2019-01-27.obo.gz"


@pytest.fixture(scope="module")
def records():
    return read_sp2014(REPO / "data" / "sp2014_go.2k.fasta.gz", REPO / "data" / "sp2014_go.2k.go.tsv.gz", n=260)


@pytest.fixture(scope="module")
def run(records, tmp_path_factory):
    """A tiny pretraining run (2 steps) on 200 real proteins; ``(run dir, the dataset's GO ids)``."""
    d = tmp_path_factory.mktemp("go_run")
    h5 = d / "sp200.h5"
    terms = write_pretraining_h5(h5, records[:200], min_records=3, n_terms=40)
    with h5py.File(h5, "r+") as f:  # what create-dataset records; the save must carry it on
        f.attrs["go_release"] = RELEASE
    settings = PretrainingSettings(
        output_dir=str(d / "run"), data=PretrainingDataSettings(episodes=EPISODES, steps_per_episode=1,
                                                                chunk_size=64, seed=1),
        steps_per_epoch=2, max_epochs=1, save_every_epochs=1, progress=False, learning_rate=1e-3,
        eval_every_epochs=0, tensorboard=False)
    pretrain(h5, settings, architecture=ARCH)
    return d / "run", terms


@pytest.fixture(scope="module")
def fasta(records, tmp_path_factory):
    """Proteins the run never saw, cut to lengths that take each padding rule: 20 residues (-> 32),
    50 (-> 64), 150 (-> its own 152), and three whole ones."""
    lengths = [20, 50, 150, None, None, None]
    chosen = [(acc, seq[:n] if n else seq) for (acc, seq, _), n in zip(records[200:], lengths)]
    path = tmp_path_factory.mktemp("go_in") / "proteins.fasta"
    path.write_text("".join(f">{acc} a protein\n{seq}\n" for acc, seq in chosen))
    return path, chosen


def predict_go(*argv):
    return proteinbert_main(["predict-go", *map(str, argv)])


def read_tsv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    return rows[0], rows[1:]


def by_protein(rows):
    out = {}
    for protein, go_id, name, p in rows:
        out.setdefault(protein, []).append((go_id, name, float(p)))
    return out


@pytest.fixture(scope="module")
def full(run, fasta, tmp_path_factory):
    """Every GO term of every protein (--top-k 0): ``(header, rows)``."""
    out = tmp_path_factory.mktemp("go_out") / "all.tsv"
    assert predict_go("--checkpoint", run[0], "-i", fasta[0], "-o", out, "--top-k", "0", "-q") == 0
    return read_tsv(out)


def test_the_save_records_the_go_ids_and_release(run):
    save = checkpoints.latest_save(run[0])
    state = json.loads((save.path / "state.json").read_text())
    assert state["annotations"] == run[1] and len(run[1]) == 40
    assert state["dataset"]["go_release"] == RELEASE


def test_tsv_columns_go_ids_and_probabilities_equal_the_models_output(run, fasta, full):
    from proteinbert.tokenizer import encode_batch
    from proteinbert.training.pretraining import load_pretrained

    header, rows = full
    assert tuple(header) == TSV_COLUMNS == ("protein_id", "go_id", "go_name", "probability")
    per = by_protein(rows)
    ids = [acc for acc, _ in fasta[1]]
    assert list(per) == ids  # file order
    assert [r[0] for r in rows] == [acc for acc in ids for _ in run[1]]  # grouped, one row per term
    for protein, terms in per.items():
        assert sorted(g for g, _, _ in terms) == run[1]  # every GO id of the dataset, once
        probs = [p for _, _, p in terms]
        assert probs == sorted(probs, reverse=True)
        assert all(0.0 <= p <= 1.0 for p in probs)
        assert all(name == "" for _, name, _ in terms)  # no --go-obo
    assert len({p for _, _, p in per[ids[0]]}) > 10  # not a constant output
    model, go_ids = load_pretrained(checkpoints.latest_save(run[0]).path)
    # Computed directly: alone, padded to the shortest episode length that holds it, else its own length.
    for k, expected_len in ((0, 32), (1, 64), (2, 152)):
        seq = fasta[1][k][1]
        assert padded_length(len(seq), [32, 64]) == expected_len
        _, direct = model([encode_batch([seq], expected_len), np.zeros((1, len(go_ids)), np.float32)], training=False)
        direct = dict(zip(go_ids, np.asarray(direct)[0].tolist()))
        written = {g: p for g, _, p in per[ids[k]]}
        # 6 significant digits are written; the command runs the model as a graph, here it runs eagerly
        np.testing.assert_allclose([written[g] for g in go_ids], [direct[g] for g in go_ids], rtol=5e-6, atol=3e-6)
    # The padding matters: padded to 64 instead, the 20-residue protein's output differs.
    _, other = model([encode_batch([fasta[1][0][1]], 64), np.zeros((1, len(go_ids)), np.float32)], training=False)
    written = {g: p for g, _, p in per[ids[0]]}
    assert np.abs(np.asarray(other)[0] - [written[g] for g in go_ids]).max() > 1e-4


def test_threshold_and_top_k(run, fasta, full, tmp_path):
    per = by_protein(full[1])
    values = sorted({p for terms in per.values() for _, _, p in terms})
    i = len(values) // 2
    threshold = (values[i - 1] + values[i]) / 2  # between two written values: no rounding at the edge

    def predicted(*flags):
        out = tmp_path / f"t{len(list(tmp_path.iterdir()))}.tsv"
        assert predict_go("--checkpoint", run[0], "-i", fasta[0], "-o", out, "-q", *flags) == 0
        return {k: [(g, p) for g, _, p in v] for k, v in by_protein(read_tsv(out)[1]).items()}

    everything = {k: [(g, p) for g, _, p in v] for k, v in per.items()}
    assert predicted("--top-k", "3") == {k: v[:3] for k, v in everything.items()}
    above = {k: [(g, p) for g, p in v if p >= threshold] for k, v in everything.items()}
    assert predicted("--threshold", threshold, "--top-k", "0") == {k: v for k, v in above.items() if v}
    both = predicted("--threshold", threshold, "--top-k", "2")
    assert both == {k: v[:2] for k, v in above.items() if v}
    assert sum(map(len, above.values())) > sum(map(len, both.values())) > 0  # both limits bit
    # the default: the 10 most probable
    assert predicted() == {k: v[:10] for k, v in everything.items()}
    # a threshold nothing reaches: a header and no rows
    out = tmp_path / "none.tsv"
    assert predict_go("--checkpoint", run[0], "-i", fasta[0], "-o", out, "--threshold", "1", "-q") == 0
    assert read_tsv(out) == (list(TSV_COLUMNS), [])


def test_select_go_terms_rules():
    probs = np.array([[0.5, 0.9, 0.5, 0.1], [0.2, 0.2, 0.2, 0.2]])
    assert select_go_terms(probs) == [[(1, 0.9), (0, 0.5), (2, 0.5), (3, 0.1)],  # ties: lower output first
                                      [(0, 0.2), (1, 0.2), (2, 0.2), (3, 0.2)]]
    assert select_go_terms(probs, threshold=0.5) == [[(1, 0.9), (0, 0.5), (2, 0.5)], []]  # at least: inclusive
    assert select_go_terms(probs, threshold=0.15, top_k=2) == [[(1, 0.9), (0, 0.5)], [(0, 0.2), (1, 0.2)]]
    assert [padded_length(n, (128, 512, 1024)) for n in (126, 127, 510, 1022, 1023)] == [128, 512, 512, 1024, 1025]
    from proteinbert.errors import InputError
    from proteinbert.go_prediction import GoPredictionSettings

    for bad in (dict(threshold=1.5), dict(threshold=-0.1), dict(top_k=-1), dict(top_k=2.5), dict(max_tokens=0)):
        with pytest.raises(InputError, match=next(iter(bad))):
            GoPredictionSettings(**bad)


def _real_names(ids):
    """Names of ``ids`` read straight from the OBO text (independently of the package's reader)."""
    names, current = {}, None
    with gzip.open(OBO, "rt") as f:
        for line in f:
            if line.startswith("id: "):
                current = line[4:].strip()
            elif line.startswith("name: ") and current in ids:
                names[current] = line[6:].strip()
    return names


def test_names_from_an_obo_file(run, fasta, tmp_path, capsys):
    terms = run[1]
    real = _real_names(set(terms))
    named = [t for t in terms if t in real][:25]  # the rest are absent from the small OBO below
    assert len(named) == 25
    obo = tmp_path / "small.obo"
    obo.write_text("format-version: 1.2\ndata-version: releases/2000-01-01\n\n" + "".join(
        f"[Term]\nid: {t}\nname: {real[t]}\n\n" for t in named))
    out = tmp_path / "named.tsv"
    capsys.readouterr()
    assert predict_go("--checkpoint", run[0], "-i", fasta[0], "-o", out, "--top-k", "0", "--go-obo", obo) == 0
    err = capsys.readouterr().err
    assert "releases/2000-01-01" in err and RELEASE in err  # the release differs from the dataset's
    assert f"{len(terms) - 25} of the model's {len(terms)} GO terms are not in it" in err
    rows = read_tsv(out)[1]
    got = {g: n for _, g, n, _ in rows}
    assert {g: n for g, n in got.items() if n} == {t: real[t] for t in named}
    assert all(got[t] == "" for t in terms if t not in named)


@pytest.mark.slow
def test_names_from_the_bundled_gene_ontology(run, fasta, tmp_path):
    """The full 2019 GO in data/ (about 10-20 s to read on 2 cores)."""
    out = tmp_path / "named.tsv"
    assert predict_go("--checkpoint", run[0], "-i", fasta[0], "-o", out, "--top-k", "0", "--go-obo", OBO, "-q") == 0
    got = {g: n for _, g, n, _ in read_tsv(out)[1]}
    real = _real_names(set(run[1]))
    assert {g: got[g] for g in real} == real and len(real) >= 35
    if "GO:0005737" in got:
        assert got["GO:0005737"] == "cytoplasm"


def _in_fresh_python(argv):
    code = ("import sys; from proteinbert.cli.main import main; rc = main(sys.argv[1:]); "
            "print(rc, 'tensorflow' in sys.modules)")
    return subprocess.run([sys.executable, "-c", code, "predict-go", *map(str, argv)], capture_output=True,
                          text=True, timeout=300)


def test_weights_without_go_ids_are_refused_in_one_line(fixtures_dir, tmp_path, fasta):
    released = fixtures_dir / "small_lamb.pkl"
    out = tmp_path / "go.tsv"
    done = _in_fresh_python(["--checkpoint", released, "-i", fasta[0], "-o", out])
    assert done.stdout.split() == ["1", "False"], done.stderr  # exit 1, before TensorFlow started
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"proteinbert predict-go: error: {released}: cannot predict GO terms with these "
                               "weights: they do not say which GO term each annotation output is")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_saves_own_pkl_points_at_its_directory(run, fasta, tmp_path, capsys):
    save = checkpoints.latest_save(run[0])
    out = tmp_path / "go.tsv"
    assert predict_go("--weights", save.pkl_path, "-i", fasta[0], "-o", out) == 1
    err = capsys.readouterr().err
    assert f"its save directory {save.path} does: pass that directory instead" in err
    # the save directory itself works, as the run directory does
    assert predict_go("--weights", save.path, "-i", fasta[0], "-o", out, "--top-k", "1", "-q") == 0
    assert len(read_tsv(out)[1]) == len(fasta[1])


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir())


def test_errors_exit_codes_and_no_output_left(run, fasta, tmp_path, capsys):
    out = tmp_path / "go.tsv"
    base = ["--checkpoint", run[0], "-i", fasta[0]]
    # usage errors (2), before anything is read
    assert predict_go(*base, "-o", out, "--threshold", "1.5") == 2
    assert "--threshold: must be a number in [0, 1]. Received: '1.5'" in capsys.readouterr().err
    assert predict_go(*base, "-o", out, "--top-k", "-1") == 2
    assert predict_go(*base, "-o", fasta[0]) == 2
    assert "refusing to overwrite an input" in capsys.readouterr().err
    out.write_text("keep me")
    assert predict_go(*base, "-o", out) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err and out.read_text() == "keep me"
    assert predict_go(*base, "-o", out, "--overwrite", "--top-k", "1", "-q") == 0
    assert read_tsv(out)[0] == list(TSV_COLUMNS)
    out.unlink()
    # data errors (1): a bad FASTA, a directory that is no run, a save whose weights are damaged
    bad = tmp_path / "dup.fasta"
    bad.write_text(">a\nMKV\n>a\nMKL\n")
    assert predict_go("--checkpoint", run[0], "-i", bad, "-o", out) == 1
    assert f"Error in file {bad} at line 3: duplicate id 'a'" in capsys.readouterr().err
    assert predict_go("--checkpoint", tmp_path, "-i", fasta[0], "-o", out) == 1
    assert "not a pretraining save or run directory" in capsys.readouterr().err
    assert predict_go("--checkpoint", tmp_path / "absent", "-i", fasta[0], "-o", out) == 1
    import shutil

    save = checkpoints.latest_save(run[0])
    damaged = tmp_path / "damaged" / save.path.name
    shutil.copytree(save.path, damaged)
    (damaged / save.pkl_path.name).write_bytes(b"not a pickle")
    assert predict_go("--checkpoint", damaged, "-i", fasta[0], "-o", out) == 1  # fails after the output is claimed
    assert "damaged" in capsys.readouterr().err
    assert _leftovers(tmp_path) == ["damaged", "dup.fasta"]  # no output, no partial file, no lock file
