"""Long fuzz run of the `.demo` reader: N corrupted copies of Unity's sample demos (seeded byte flips, truncations,
insertions, overwritten runs), counted as accepted / clear errors (`DemoError` naming the file) / crashes (any
other exception). The test suite runs a few hundred of the same kind (tests/test_fuzz_demos.py).

    python bench/fuzz_demos.py [--n 10000] [--seed 1] [--samples ../shared/mlagents-samples/demos]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

from mlops_unity_pipeline.demos.demofile import DemoError, read_demo


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not b:
            break
        i, kind = rng.randrange(len(b)), rng.randrange(5)
        if kind == 0:
            b[i] = rng.randrange(256)
        elif kind == 1:
            b[i] ^= 1 << rng.randrange(8)
        elif kind == 2:
            del b[i:]
        elif kind == 3:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        else:
            b[i:i + rng.randint(1, 16)] = bytes([rng.choice((0, 0x7F, 0xFF))]) * rng.randint(1, 16)
    return bytes(b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--samples", default=str(Path(__file__).resolve().parents[2] / "shared" / "mlagents-samples" /
                                             "demos"))
    args = ap.parse_args()
    originals = {p.name: p.read_bytes()[:60_000] for p in sorted(Path(args.samples).glob("*.demo"))}
    rng = random.Random(args.seed)
    counts: Counter[str] = Counter()
    crashes: Counter[str] = Counter()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzzed.demo"
        for _ in range(args.n):
            path.write_bytes(mutate(originals[rng.choice(sorted(originals))], rng))
            try:
                read_demo(path)
                counts["accepted"] += 1
            except DemoError as exc:
                counts["clear error" if str(path) in str(exc) else "error without the file name"] += 1
            except Exception:  # noqa: BLE001 - counting what must never happen
                counts["crash"] += 1
                crashes[traceback.format_exc().strip().splitlines()[-1][:160]] += 1
    print(f"{args.n} corrupted demos in {time.monotonic() - t0:.0f} s: " +
          ", ".join(f"{k} {counts[k]}" for k in ("accepted", "clear error", "error without the file name", "crash")))
    for line, n in crashes.most_common(10):
        print(f"  {n} x {line}")


if __name__ == "__main__":
    main()
