"""Benchmark ``create_dataset`` on a large UniRef-format XML + FASTA made from a small real sample.

The entries of a UniRef90-format sample (``--xml``, gzipped XML, and ``--fasta``, its sequences;
e.g. 250 real entries) are repeated with fresh, unique cluster ids (and entry names) until
``--records`` entries exist, gzipped, into a temporary directory. Then, each in its own process
(so peak RSS is per measurement):

* **floor**: a bare ``gzip`` + lxml ``iterparse`` pass over the XML (entries cleared as read);
* **floor-threaded**: the same with decompression on a second thread (our reader);
* **build**: ``build_dataset`` on the XML + FASTA with the full 2019 GO (``--go-obo``, default
  ``data/go-2019-01-27.obo.gz``; default settings otherwise: each
  input parsed in a worker process); per stage: seconds, records/s and peak RSS of the main process
  plus its parser worker (sampled every 50 ms);
* the floor again after the build, since the load of a shared machine drifts.

Usage::

    python benchmarks/create_dataset.py --xml sample.xml.gz --fasta sample.fasta --records 1000000 [--keep DIR]
    python benchmarks/create_dataset.py --xml sample.xml.gz --fasta sample.fasta --quick   # seconds: 500 records

Prints a table; figures on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import _harness

GO_OBO = _harness.DATA / "go-2019-01-27.obo.gz"
QUICK_RECORDS = 500


def generate(directory: Path, n_records: int, xml_src: Path, fasta_src: Path) -> tuple[Path, Path]:
    """Write ``n_records`` entries, the sample's repeated under fresh ids, as gzipped XML + FASTA."""
    text = gzip.decompress(xml_src.read_bytes()).decode("iso-8859-1")
    head, _, rest = text.partition("<entry ")
    entries = ["<entry " + e for e in rest.split("<entry ")]
    entries[-1], _, tail = entries[-1].rpartition("</entry>")
    entries[-1] += "</entry>\n"
    tail = tail.strip() + "\n"
    fasta = {}
    cur = None
    for line in fasta_src.read_text().splitlines():
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
    """Samples memory and CPU time of this process and its children every ``interval`` seconds.

    Memory is PSS (proportional set size) summed over the processes: the builder's parser worker
    is forked and shares pages with its parent, which plain RSS would count twice. CPU time is
    user + system of this process plus its finished children (a worker is joined when its stage ends).
    """

    def __init__(self, interval: float = 0.05):
        import psutil

        self.proc = psutil.Process()
        self.samples: list = []
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.t0 = time.perf_counter()
        self._thread.start()

    @staticmethod
    def _mem(proc) -> int:
        import psutil

        try:
            return proc.memory_full_info().pss
        except (psutil.Error, OSError):  # no smaps access, or the process just exited
            try:
                return proc.memory_info().rss
            except (psutil.Error, OSError):
                return 0

    def _sample(self):
        mem = self._mem(self.proc) + sum(self._mem(c) for c in self.proc.children(recursive=True))
        t = os.times()
        cpu = t.user + t.system + t.children_user + t.children_system
        self.samples.append((time.perf_counter() - self.t0, mem, cpu))

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            time.sleep(self.interval)

    def stop(self):
        self._stop.set()
        self._thread.join()
        self._sample()

    def peak(self, start: float = 0.0, stop: float = float("inf")) -> int:
        vals = [m for t, m, _ in self.samples if start <= t <= stop]
        return max(vals) if vals else 0

    def cpu_between(self, start: float, stop: float) -> float:
        before = [c for t, _, c in self.samples if t <= start] or [self.samples[0][2]]
        after = [c for t, _, c in self.samples if t >= stop] or [self.samples[-1][2]]
        return after[0] - before[-1]


def child_floor(xml: str, threaded: bool) -> dict:
    from lxml import etree

    sampler = RssSampler()
    t = time.perf_counter()
    if threaded:
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
    return {"records": n, "seconds": dt, "cpu": time.process_time(), "peak_rss": sampler.peak()}


def child_build(xml: str, fasta: str, out: str, go_obo: str) -> dict:
    from proteinbert.data.dataset_builder import DatasetSettings, build_dataset

    sampler = RssSampler()
    summary = build_dataset(DatasetSettings(output=out, go_obo=go_obo, input_kind="uniref", xml=xml, fasta=fasta,
                                            min_records_per_term=100, progress=False))
    sampler.stop()
    stages = {}
    start = 0.0
    for name in ("ontology", "uniref_xml", "fasta_join", "write"):
        sec = summary.seconds[name]
        stages[name] = {"seconds": sec, "peak_rss": sampler.peak(start, start + sec),
                        "cpu": sampler.cpu_between(start, start + sec)}
        start += sec
    return {"records": summary.n_records, "annotations": summary.n_annotations, "stages": stages,
            "total_seconds": summary.seconds["total"], "peak_rss": sampler.peak(),
            "cpu": sampler.cpu_between(0.0, float("inf")),
            "output_size": os.path.getsize(out)}


def run_child(*args) -> dict:
    result = _harness.run_result_child([sys.executable, __file__, "--child", *map(str, args)])
    if result is None:
        raise SystemExit(f"child {args[0]} failed")
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--xml", type=Path, help="the UniRef90-format sample to repeat (gzipped XML)")
    ap.add_argument("--fasta", type=Path, help="the sample's sequences (FASTA, plain text)")
    ap.add_argument("--go-obo", type=Path, default=GO_OBO, help="GO ontology (default: %(default)s)")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true", help=f"seconds: {QUICK_RECORDS} records, one run")
    ap.add_argument("--keep", metavar="DIR", help="generate into / reuse DIR instead of a temporary directory")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run the floor and the build this many times, alternating, and keep the fastest of each "
                         "(min-of-N damps the noise of a shared machine)")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        if kind == "floor":
            out = child_floor(rest[0], threaded=False)
        elif kind == "floor-threaded":
            out = child_floor(rest[0], threaded=True)
        else:
            out = child_build(*rest)
        _harness.emit_result(out)
        return 0
    for option, path in (("--xml", args.xml), ("--fasta", args.fasta), ("--go-obo", args.go_obo)):
        if path is None:
            ap.error(f"{option} is required: the sample to repeat (see --help)")
        if not path.is_file():
            ap.error(f"{option} {path}: no such file")
    if args.quick:
        args.records, args.repeat = QUICK_RECORDS, 1
    _harness.print_header(records=args.records)

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
        generate(directory, args.records, args.xml, args.fasta)
        marker.touch()
        print(f"generated {args.records:,} entries in {time.perf_counter() - t:.0f} s: "
              f"XML.gz {xml.stat().st_size / 1e6:.0f} MB, FASTA.gz {fasta.stat().st_size / 1e6:.0f} MB")

    mb = 1 / 2 ** 20
    load_before = os.getloadavg()[0]
    floors, floors_t, builds, floors_after = [], [], [], []
    for _ in range(max(1, args.repeat)):
        floors.append(run_child("floor", xml))
        floors_t.append(run_child("floor-threaded", xml))
        builds.append(run_child("build", xml, fasta, directory / "out.h5", args.go_obo))
        floors_after.append(run_child("floor", xml))
    fastest = lambda runs: min(runs, key=lambda r: r["seconds"])  # noqa: E731
    floor, floor_t, floor_after = fastest(floors), fastest(floors_t), fastest(floors_after)
    build = dict(builds[0])
    build["stages"] = {name: min((b["stages"][name] for b in builds), key=lambda st: st["seconds"])
                       for name in builds[0]["stages"]}
    build["total_seconds"] = min(b["total_seconds"] for b in builds)
    build["peak_rss"] = max(b["peak_rss"] for b in builds)
    n = args.records
    if args.repeat > 1:
        print(f"fastest of {args.repeat} runs per row (peak memory: the largest)")
    print(f"{os.cpu_count()} CPUs; 1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
          "(wall-clock figures on a shared machine are noisy)")
    rows = [("floor: gzip + iterparse", floor), ("floor again, after the build", floor_after),
            ("floor, threaded gunzip", floor_t)]
    rows += [(f"build: {name}", st) for name, st in build["stages"].items()]
    rows.append(("build: total", {"seconds": build["total_seconds"], "cpu": build["cpu"], "peak_rss": build["peak_rss"]}))
    print(f"\n{'measurement':<32}{'wall s':>8}{'rec/s':>9}{'CPU s':>8}{'rec/CPU-s':>11}{'peak MB':>9}")
    for label, r in rows:
        rate = "" if label.endswith("ontology") else f"{n / r['seconds']:,.0f}"
        cpu_rate = "" if label.endswith("ontology") else f"{n / max(r['cpu'], 1e-9):,.0f}"
        print(f"{label:<32}{r['seconds']:>8.1f}{rate:>9}{r['cpu']:>8.1f}{cpu_rate:>11}{r['peak_rss'] * mb:>9.0f}")
    floor_s = (floor["seconds"] + floor_after["seconds"]) / 2
    floor_cpu = (floor["cpu"] + floor_after["cpu"]) / 2
    xml = build["stages"]["uniref_xml"]
    print(f"\nXML stage / floor (mean of the two floor runs): wall {xml['seconds'] / floor_s:.2f}×, "
          f"CPU {xml['cpu'] / floor_cpu:.2f}× (target ≤ 2×)")
    print(f"peak memory (PSS, main + worker) {build['peak_rss'] * mb:.0f} MB (target < 1024 MB); "
          f"{build['records']:,} records × {build['annotations']} GO terms, output {build['output_size'] / 1e6:.0f} MB")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
