"""Parse every model of the mobile-ml-benchmark tables and check it against the CSV FLOPS column.

Builds the 102 real CNNs (``--kind cnn``, pytorchcv at 224x224) or the Hugging Face ViTs
(``--kind transformer``) through ``ledgformer.data.mobile.load_mobile`` (disk-cached: the second
run only reads the cache), prints cold/warm load time, how many parse, every failure with its
reason, and the FLOPS agreement (2 x Conv+Gemm+MatMul MACs vs the FLOPS column). Exits 1 when
fewer than ``--min-parsed`` models parse.

    .venv/bin/python benchmarks/mobile_parse.py --kind cnn --min-parsed 95
    .venv/bin/python benchmarks/mobile_parse.py --kind transformer
"""

from __future__ import annotations

import argparse
import sys
import time

import pandas as pd
import torch

from ledgformer.data.mobile import FOLDER, flops_agreement, load_mobile
from ledgformer.data.root import resolve_data_root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("cnn", "transformer"), default="cnn")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--min-parsed", type=int, default=0, help="fail when fewer models parse")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = resolve_data_root(args.data_root)
    times = []
    for _ in range(2):  # cold (or already warm) load, then a warm one
        t0 = time.perf_counter()
        data = load_mobile(root, kind=args.kind)
        times.append(time.perf_counter() - t0)
    n_models = data.meta["models"]
    print(f"{data.name}: {len(data.graphs)}/{n_models} models parsed, {len(data.records)} records, "
          f"{len(data.devices())} cards; missing measurements {data.meta['missing_measurements']}")
    print(f"load time: first {times[0]:.1f} s, second (warm cache) {times[1]:.2f} s")
    for gid, why in sorted(data.failures.items()):
        print(f"  FAILED {gid}: {why[:300]}")
    agree = flops_agreement(data)
    print(f"FLOPS agreement: median relative error {agree['median_rel_err']:.4f}, "
          f"{agree['within_5pct']}/{agree['n']} (model, framework) pairs within 5%")
    tables = {fw: pd.read_csv(root / FOLDER / f"{fw}_{args.kind}_e2e.csv").set_index("model")
              for fw in data.meta["frameworks"]}
    for key, err in sorted(agree["per_model"].items(), key=lambda kv: -kv[1]):
        if err > 0.05:  # the CSV's size column is bytes: / 4 for fp32 parameters
            model, fw = key.split("|")
            graph = data.graphs[f"mmb/{'cnn' if args.kind == 'cnn' else 'vit'}/{model}"]
            ours, csv = agree["flops"][key]
            print(f"  {key}: {err:.3f} (ours 2 x MACs {ours / 1e9:.2f} G, CSV FLOPS {csv / 1e9:.2f} G; "
                  f"our params {graph.params / 1e6:.2f} M, CSV size / 4 "
                  f"{tables[fw].loc[model, 'size'] / 4e6:.2f} M)")
    return 0 if len(data.graphs) >= args.min_parsed else 1


if __name__ == "__main__":
    sys.exit(main())
