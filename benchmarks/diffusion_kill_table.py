"""Print the diffusion mutant kill table: each mutant and its correct sibling over many seeds.

    python benchmarks/diffusion_kill_table.py [num_seeds]
"""

import sys

import torch

from verification.mutants.diffusion import kill_table

if __name__ == "__main__":
    torch.set_num_threads(1)
    kill_table(range(int(sys.argv[1]) if len(sys.argv) > 1 else 100), alpha=1e-5)
