"""Benchmark ``create_dataset`` on a large UniRef-format XML + FASTA made from the real 250 entries.

The 250 real entries of ``../shared/data/uniref_like`` are repeated with fresh, unique cluster ids
(and entry names) until ``--records`` entries exist, gzipped, into a temporary directory. Then,
each in its own process (so peak RSS is per measurement):

* **floor**: a bare ``gzip`` + lxml ``iterparse`` pass over the XML (entries cleared as read);
* **floor-threaded**: the same with decompression on a second thread (our reader);
* **build**: ``build_dataset`` on the XML + FASTA with the full 2019 GO; per stage: seconds,
  records/s and peak RSS (sampled every 50 ms).

Usage::

    python benchmarks/create_dataset.py --records 1000000 [--keep DIR]

Prints a table; figures on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PROTEINBERT_SHARED", REPO.parent / "shared")) / "data"
XML_SRC = SHARED / "uniref_like" / "uniref90_like.sprot250.xml.gz"
FASTA_SRC = SHARED / "uniref_like" / "uniref90_like.sprot250.fasta"
GO_OBO = SHARED / "go" / "go-2019-01-27.obo.gz"


def generate(directory: Path, n_records: int) -> tuple[Path, Path]:
    text = gzip.decompress(XML_SRC.read_bytes()).decode("iso-8859-1")
    head, _, rest = text.partition("<entry ")
    entries = ["<entry " + e for e in rest.split("<entry ")]
    entries[-1], _, tail = entries[-1].rpartition("</entry>")
    entries[-1] += "</entry>\n"
    tail = tail.strip() + "\n"
    fasta = {}
    cur = None
    for line in FASTA_SRC.read_text().splitlines():
        if line.startswith(">"):
            cur, _, desc = line[1:].partition(" ")
            fasta[cur] = [desc, []]
        else:
            fasta[cur][1].append(line)
    id_re = re.compile(r'<entry id="([^"]+)"')
    name_re = re.compile(r'(<dbReference type="UniProtKB ID" id=")([^"]+)(")')
    templates = []
    for e in entries:
        cid = id_re.search(e).group(1)
        templates.append((cid, e, fasta[cid][0], "\n".join(fasta[cid][1])))
    xml_path, fasta_path = directory / "uniref_bench.xml.gz", directory / "uniref_bench.fasta.gz"
    with gzip.open(xml_path, "wt", encoding="iso-8859-1", compresslevel=6) as fx, \
            gzip.open(fasta_path, "wt", encoding="utf-8", compresslevel=6) as ff:
        fx.write(head)
        for i in range(n_records):
            cid, e, desc, seq = templates[i % len(templates)]
            new_id = f"{cid}-{i // len(templates)}"
            body = e.replace(f'id="{cid}"', f'id="{new_id}"', 1)
            body = name_re.sub(lambda m: f"{m.group(1)}{m.group(2)}-{i // len(templates)}{m.group(3)}", body, count=1)
            fx.write(body)
            ff.write(f">{new_id} {desc}\n{seq}\n")
        fx.write(tail)
    return xml_path, fasta_path


# -- child processes ----------------------------------------------------------------------------
class RssSampler:
    def __init__(self, interval: float = 0.05):
        import psutil

        self.proc = psutil.Process()
        self.samples: list = []
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.t0 = time.perf_counter()
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.samples.append((time.perf_counter() - self.t0, self.proc.memory_info().rss))
            time.sleep(self.interval)

    def stop(self):
        self._stop.set()
        self._thread.join()
        self.samples.append((time.perf_counter() - self.t0, self.proc.memory_info().rss))

    def peak(self, start: float = 0.0, stop: float = float("inf")) -> int:
        vals = [r for t, r in self.samples if start <= t <= stop]
        return max(vals) if vals else 0


def child_floor(xml: str, threaded: bool) -> dict:
    from lxml import etree

    sampler = RssSampler()
    t = time.perf_counter()
    if threaded:
        sys.path.insert(0, str(REPO))
        from proteinbert.data.streams import ThreadedInput

        f = ThreadedInput(xml)
    else:
        f = gzip.open(xml, "rb")
    n = 0
    with f:
        for _, el in etree.iterparse(f, events=("end",), tag="{http://uniprot.org/uniref}entry"):
            n += 1
            el.clear(keep_tail=True)
            while el.getprevious() is not None:
                del el.getparent()[0]
    dt = time.perf_counter() - t
    sampler.stop()
    return {"records": n, "seconds": dt, "peak_rss": sampler.peak()}


def child_build(xml: str, fasta: str, out: str) -> dict:
    sys.path.insert(0, str(REPO))
    from proteinbert.data.dataset_builder import DatasetSettings, build_dataset

    sampler = RssSampler()
    summary = build_dataset(DatasetSettings(output=out, go_obo=GO_OBO, input_kind="uniref", xml=xml, fasta=fasta,
                                            min_records_per_term=100, progress=False))
    sampler.stop()
    stages = {}
    start = 0.0
    for name in ("ontology", "uniref_xml", "fasta_join", "write"):
        sec = summary.seconds[name]
        stages[name] = {"seconds": sec, "peak_rss": sampler.peak(start, start + sec)}
        start += sec
    return {"records": summary.n_records, "annotations": summary.n_annotations, "stages": stages,
            "total_seconds": summary.seconds["total"], "peak_rss": sampler.peak(),
            "output_size": os.path.getsize(out)}


def run_child(*args) -> dict:
    res = subprocess.run([sys.executable, __file__, "--child", *map(str, args)], capture_output=True, text=True)
    if res.returncode != 0:
        sys.stderr.write(res.stderr)
        raise SystemExit(f"child {args[0]} failed")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--keep", metavar="DIR", help="generate into / reuse DIR instead of a temporary directory")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "floor":
            out = child_floor(rest[0], threaded=False)
        elif kind == "floor-threaded":
            out = child_floor(rest[0], threaded=True)
        else:
            out = child_build(*rest)
        print(json.dumps(out))
        return

    tmp = None
    if args.keep:
        directory = Path(args.keep)
        directory.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench_create_dataset-")
        directory = Path(tmp.name)
    xml, fasta = directory / "uniref_bench.xml.gz", directory / "uniref_bench.fasta.gz"
    marker = directory / f"n={args.records}"
    if not marker.exists():
        t = time.perf_counter()
        generate(directory, args.records)
        marker.touch()
        print(f"generated {args.records:,} entries in {time.perf_counter() - t:.0f} s: "
              f"XML.gz {xml.stat().st_size / 1e6:.0f} MB, FASTA.gz {fasta.stat().st_size / 1e6:.0f} MB")

    mb = 1 / 2 ** 20
    floor = run_child("floor", xml)
    floor_t = run_child("floor-threaded", xml)
    build = run_child("build", xml, fasta, directory / "out.h5")
    n = args.records
    print(f"\n{'measurement':<34}{'seconds':>9}{'records/s':>12}{'peak RSS MB':>13}")
    print(f"{'floor: gzip + iterparse':<34}{floor['seconds']:>9.1f}{n / floor['seconds']:>12,.0f}{floor['peak_rss'] * mb:>13.0f}")
    print(f"{'floor, threaded gunzip':<34}{floor_t['seconds']:>9.1f}{n / floor_t['seconds']:>12,.0f}{floor_t['peak_rss'] * mb:>13.0f}")
    for name, st in build["stages"].items():
        rate = "" if name == "ontology" else f"{n / st['seconds']:,.0f}"
        print(f"{'build: ' + name:<34}{st['seconds']:>9.1f}{rate:>12}{st['peak_rss'] * mb:>13.0f}")
    print(f"{'build: total':<34}{build['total_seconds']:>9.1f}{n / build['total_seconds']:>12,.0f}{build['peak_rss'] * mb:>13.0f}")
    ratio = build["stages"]["uniref_xml"]["seconds"] / floor["seconds"]
    print(f"\nXML stage / floor = {ratio:.2f}× (target ≤ 2×); peak RSS {build['peak_rss'] * mb:.0f} MB (target < 1024 MB); "
          f"{build['records']:,} records × {build['annotations']} GO terms, output {build['output_size'] / 1e6:.0f} MB")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
