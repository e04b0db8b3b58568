"""Print the speed-versus-error table: exact TV and expected rounds of every baseline and exact sampler.

    python benchmarks/speed_error.py          # quick (n=3, q=2)
    python benchmarks/speed_error.py --full   # adds n=3, q=3 and random-order draft samplers
"""

import argparse
import json

from verification.speed_error import format_table, speed_error_rows

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    rows = speed_error_rows(quick=not args.full)
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)
