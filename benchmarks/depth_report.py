"""Depth and exactness at scale, printed: the exponent table with theory lines, rounds and
queries at the largest n, sequence-level minus token-level rounds with 95% intervals, then
check_exact of every speculative sampler on every family at n = 1024 and the catalogue
mutants there.

    python benchmarks/depth_report.py [--quick] [--device cuda] [--out DIR] [--no-exactness]
    python benchmarks/depth_report.py --from-json reports/depth/depth.json \
        [--exactness-json reports/depth/exactness_1024.json]     # reprint saved runs, no sampling

The exactness part (``verification.depth.run_exactness``: Sequential, TokenSpeculative and
SequenceSpeculative on the five structured families, then every discrete mutant on every family)
plans its samples with check_exact(tv=0.05) unless --exactness-samples is given; about 17,000
samples per check at n = 1024 reach min_detectable_tv 0.05 on the statistics' laws (see
benchmarks/depth_results.md for the measured costs).  Each line states the TV its check detects
with power 0.99.
"""

import argparse
import json
import os
import sys

import torch

from verification import depth


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    depth.add_arguments(parser)
    parser.add_argument("--no-exactness", action="store_true")
    parser.add_argument("--from-json", default=None, help="reprint a saved depth.json instead of running the grid")
    parser.add_argument("--exactness-json", default=None, help="reprint a saved exactness JSON instead of running the checks")
    args = parser.parse_args(argv)
    if args.from_json:
        with open(args.from_json) as f:
            results = json.load(f)
        meta = results["meta"]
        print(f"depth grid from {args.from_json}: device {meta['device']}, n = {meta['ns']}, families = {meta['families']}, "
              f"wall clock {meta.get('wall_clock_s', float('nan')):.0f} s (load average at start {meta.get('load_average_start')})")
        print(depth.format_table(results))
        code = 0
    else:
        code = depth.run_from_args(args)
    if code or args.no_exactness or args.exactness:
        return code
    if args.exactness_json:
        with open(args.exactness_json) as f:
            result = json.load(f)
    else:
        if not args.device.startswith("cuda"):
            torch.set_num_threads(max(1, args.threads))
        families = None if args.exactness_families is None else args.exactness_families.split(",")
        result = depth.run_exactness(n=1024, num_samples=args.exactness_samples, alpha=1e-4, device=args.device, families=families)
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "exactness.json"), "w") as f:
            json.dump(result, f, indent=1)
    print()
    print(depth.format_exactness(result))
    failed = [s for s in result["samplers"] if s.get("verdict", "pass" if s["passed"] else "fail") == "fail"]
    caught = [m["mutant"] for m in result["mutants"] if m["caught_on"]]
    return 0 if not failed and len(caught) >= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
