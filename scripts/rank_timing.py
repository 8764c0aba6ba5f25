"""Seconds to rank all 15,625 NAS-Bench-201 archs for two devices with one predictor, in this
process: load, first device (cold the first time ever: graphs + encodings; later runs read the
encoding disk cache), second device. Run it twice to see the warm numbers.

    python scripts/rank_timing.py help-nb201-latency
"""

from __future__ import annotations

import sys
import time


def main(name: str) -> None:
    t0 = time.perf_counter()
    from ledgformer.api import Predictor
    from ledgformer.spaces import nb201

    archs = nb201.all_arch_strings()
    p = Predictor.load(name)
    t1 = time.perf_counter()
    p.rank(archs, "help/raspi4")
    t2 = time.perf_counter()
    p.rank(archs, "help/pixel2")
    t3 = time.perf_counter()
    print(f"load {t1 - t0:.1f} s, first device {t2 - t1:.2f} s, second device {t3 - t2:.2f} s")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "help-nb201-latency")
