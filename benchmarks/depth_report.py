"""Depth and exactness at scale, printed: the exponent table with theory lines, rounds and
queries at the largest n, the claims checked, then check_exact of every speculative
sampler on every family at n = 1024 and the catalogue mutants there.

    python benchmarks/depth_report.py [--quick] [--device cuda] [--out DIR] [--no-exactness]
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
    args = parser.parse_args(argv)
    code = depth.run_from_args(args)
    if code or args.no_exactness or args.exactness:
        return code
    if not args.device.startswith("cuda"):
        torch.set_num_threads(max(1, args.threads))
    print("\ncheck_exact at n = 1024 (exact statistic laws, Holm-corrected chi-square, alpha 1e-4 per check)")
    result = depth.run_exactness(n=1024, num_samples=1500, alpha=1e-4, device=args.device)
    passed = sum(s["passed"] for s in result["samplers"])
    caught = [m["mutant"] for m in result["mutants"] if m["caught_on"]]
    print(f"\nspeculative samplers exact: {passed}/{len(result['samplers'])};  mutants caught: {len(caught)}/{len(result['mutants'])} {caught}")
    with open(os.path.join(args.out, "exactness.json"), "w") as f:
        json.dump(result, f, indent=1)
    return 0 if passed == len(result["samplers"]) and len(caught) >= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
