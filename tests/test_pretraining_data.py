"""The pretraining batch stream: episodes, corruption, weights, reproducibility, chunked reading."""

import threading

import h5py
import numpy as np
import pytest

from proteinbert.data.h5dataset import PretrainingDataset
from proteinbert.data.pretraining_batches import (
    PretrainingBatches, PretrainingDataSettings, StreamState, episode_probabilities, holdout_batch, split_for_replicas,
)
from proteinbert.training.pretraining_input import close_iterator, replica_dataset
from proteinbert.errors import DatasetSchemaError, InputError
from proteinbert.tokenizer import END_ID, PAD_ID, START_ID, encode_residues

from conftest import require_shared
from pretraining_h5 import read_sp2014, write_pretraining_h5

EPISODES = ((32, 16), (64, 8))


@pytest.fixture(scope="module")
def h5_path(tmp_path_factory):
    d = require_shared("data", "swissprot_go_2014")
    records = read_sp2014(d / "sp2014_go.2k.fasta.gz", d / "sp2014_go.2k.go.tsv.gz", n=600)
    path = tmp_path_factory.mktemp("pt") / "sp600.h5"
    write_pretraining_h5(path, records, min_records=3, test_fraction=0.1)
    return path


def settings(**kw):
    base = dict(episodes=EPISODES, steps_per_episode=3, chunk_size=100, holdout_records=50, seed=7)
    base.update(kw)
    return PretrainingDataSettings(**base)


def test_episode_probabilities_favour_the_closest_length():
    p = episode_probabilities([30, 126, 510, 1022, 5000], [128, 512, 1024])
    assert np.allclose(p.sum(axis=1), 1)
    assert p[0].argmax() == 0
    assert p[1].argmax() == 0 and p[2].argmax() == 1 and p[3].argmax() == 2 and p[4].argmax() == 2
    # r = 1 exactly: weight exp(-1); r = 4: exp(-4) (before normalising)
    w = np.exp(-np.array([1.0, 4.0, 8.0]))
    assert np.allclose(p[1], w / w.sum())


def test_settings_are_checked():
    with pytest.raises(InputError, match="steps_per_episode"):
        PretrainingDataSettings(steps_per_episode=0)
    with pytest.raises(InputError, match="token_corruption_p"):
        PretrainingDataSettings(token_corruption_p=1.5)
    with pytest.raises(InputError, match="episodes"):
        PretrainingDataSettings(episodes=((2, 4),))
    s = settings()
    assert PretrainingDataSettings.from_dict(s.to_dict()) == s
    with pytest.raises(Exception):
        s.seed = 3  # frozen


def test_same_seed_same_batches_and_schedule(h5_path):
    with PretrainingDataset(h5_path) as ds:
        a = [b.fingerprint() for b in _take(PretrainingBatches(ds, settings()), 12)]
        stream = PretrainingBatches(ds, settings())
        batches = _take(stream, 12)
        c = [b.fingerprint() for b in _take(PretrainingBatches(ds, settings(seed=8)), 12)]
    assert a == [b.fingerprint() for b in batches]
    assert a != c
    for b in batches:
        L, B = EPISODES[(b.step // 3) % 2]
        assert b.tokens.shape == (B, L) and b.annotations.shape[0] == B


def test_stream_continues_exactly_from_a_saved_state(h5_path):
    with PretrainingDataset(h5_path) as ds:
        stream = PretrainingBatches(ds, settings())
        batches = _take(stream, 20)  # the stream runs ahead of "training", as under prefetch
        state = stream.state_after(9)
        arrays = state.to_arrays()
        resumed = PretrainingBatches(ds, settings(), state=StreamState.from_arrays(arrays))
        assert resumed.step == 10
        again = _take(resumed, 10)
    assert [b.fingerprint() for b in again] == [b.fingerprint() for b in batches[10:]]


def test_batches_follow_the_corruption_and_weight_rules(h5_path):
    s = settings(episodes=((48, 128),), holdout_records=0, chunk_size=200)
    with PretrainingDataset(h5_path) as ds:
        all_recs = ds.read(0, len(ds))
        batches = _take(PretrainingBatches(ds, s), 30)
    ids = np.concatenate([b.record_ids for b in batches])
    # One pass over the 600 records (600 // 128 = 4 full batches) has no repeats.
    assert len(set(ids[:512].tolist())) == 512
    tok_changed = tok_total = 0
    hidden = visible = kept = true_total = added = absent_total = 0
    for b in batches:
        w = b.token_weights > 0
        assert np.array_equal(w, b.token_targets != PAD_ID)
        assert (b.token_targets[:, 0] == START_ID).all()
        assert (b.tokens[~w] == PAD_ID).all()
        tok_changed += int((b.tokens != b.token_targets)[w].sum())
        tok_total += int(w.sum())
        for i, rid in enumerate(b.record_ids):
            seq = all_recs.seqs[rid]
            n_res = int(w[i].sum()) - 2
            assert b.token_targets[i, n_res + 1] == END_ID
            res = encode_residues(seq)
            if len(seq) <= 46:
                assert np.array_equal(b.token_targets[i, 1:n_res + 1], res)
            else:  # cropped at some offset: a window of the real sequence
                window = b.token_targets[i, 1:47]
                assert n_res == 46 and any(np.array_equal(res[o:o + 46], window) for o in range(len(res) - 45))
            truth = all_recs.annotation_masks[rid]
            assert np.array_equal(b.annotation_targets[i] > 0, truth)
            is_test = bool(all_recs.test_set_mask[rid])
            assert b.annotation_weights[i] == float(truth.any() and not is_test)
            given = b.annotations[i] > 0
            if is_test:
                assert not given.any()
            if not given.any():
                hidden += 1
                continue
            visible += 1
            kept += int((given & truth).sum())
            true_total += int(truth.sum())
            added += int((given & ~truth).sum())
            absent_total += int((~truth).sum())
    # tokens: replaced with p = 0.05 by one of 26 tokens (1/26 of them the same token)
    assert abs(tok_changed / tok_total - 0.05 * 25 / 26) < 0.006
    assert 0.45 < hidden / (hidden + visible) < 0.65  # 0.5, plus test-set and unannotated rows
    assert abs(kept / true_total - 0.75) < 0.04
    assert added / absent_total < 1e-3


def test_holdout_records_are_never_trained_on(h5_path):
    s = settings(holdout_records=100)
    with PretrainingDataset(h5_path) as ds:
        ids = np.concatenate([b.record_ids for b in _take(PretrainingBatches(ds, s), 60)])
        held = holdout_batch(ds, s, max_records=40)
        given = holdout_batch(ds, s, max_records=40, annotation_inputs=True)
        test = ds.read(len(ds) - 100, len(ds) - 60).test_set_mask
        n = len(ds)
    assert ids.max() < n - 100
    assert held.tokens.shape == (40, 32) and held.record_ids.min() == n - 100
    assert not held.annotations.any()  # GO terms are predicted from the sequence alone
    assert np.array_equal(given.tokens, held.tokens)
    shown = given.annotations.any(axis=1)
    assert not shown[test].any()
    eligible = given.annotation_targets.any(axis=1) & ~test
    # never hidden; a protein with few terms may still lose them all to the 25% drop
    assert shown.sum() >= 0.9 * eligible.sum()
    assert ((given.annotations > 0) & (given.annotation_targets == 0)).mean() < 1e-3


def test_reads_chunks_never_the_whole_file(h5_path, monkeypatch):
    calls = []
    original = PretrainingDataset.read

    def spy(self, start, stop):
        calls.append((start, stop))
        return original(self, start, stop)

    monkeypatch.setattr(PretrainingDataset, "read", spy)
    with PretrainingDataset(h5_path) as ds:
        _take(PretrainingBatches(ds, settings(chunk_size=64)), 10)
    assert calls and all(stop - start <= 64 for start, stop in calls)


def test_replica_split_and_tf_pipeline(h5_path):
    with PretrainingDataset(h5_path) as ds:
        batch = PretrainingBatches(ds, settings()).next_batch()
        parts = split_for_replicas(batch, 2)
        assert sum(p["tokens"].shape[0] for p in parts) == 16
        assert np.array_equal(np.concatenate([p["tokens"] for p in parts]), batch.tokens)
        assert parts[1]["n_tokens"][0] == batch.token_weights.sum()
        with pytest.raises(InputError, match="multiple of the number of replicas"):
            split_for_replicas(batch, 3)
        stream = PretrainingBatches(ds, settings())
        stop = threading.Event()
        dataset = replica_dataset(stream, 2, (0, 1), prefetch=2, stop=stop)
        assert dataset.options().autotune.enabled is False  # see fixed_pipeline_options
        iterator = iter(dataset)
        elements = [next(iterator) for _ in range(4)]
        close_iterator(iterator, stop)  # ends the generator before the iterator goes
        assert stream.step <= 2 + 2 + 1
        ref = PretrainingBatches(ds, settings())
        b0, b1 = ref.next_batch(), ref.next_batch()
    assert np.array_equal(elements[0]["tokens"].numpy(), b0.tokens[:8])
    assert np.array_equal(elements[1]["tokens"].numpy(), b0.tokens[8:])
    assert np.array_equal(elements[3]["token_targets"].numpy(), b1.token_targets[8:])
    assert int(elements[2]["step"][0]) == 1


def test_bad_hdf5_lists_expected_and_found(tmp_path):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as h5:
        h5["included_annotations"] = np.array([b"GO:1", b"GO:2"])
        h5["seqs"] = np.array([b"MKV", b"MA", b"MQ"])
        h5["seq_lengths"] = np.array([3, 2], dtype=np.int32)
        h5["annotation_masks"] = np.zeros((3, 5), dtype=bool)
        h5["test_set_mask"] = np.zeros(3, dtype=bool)
    with pytest.raises(DatasetSchemaError) as err:
        PretrainingDataset(path)
    text = str(err.value)
    assert "uniprot_ids" in text and "missing" in text
    assert "A = 5 here but 2 elsewhere" in text and "N = 2 here but 3 elsewhere" in text


def _take(stream, n):
    return [stream.next_batch() for _ in range(n)]
