"""Helpers shared by the audit, report, CLI and plugin tests: user samplers and tiny audits."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

XSS_NAME = "<script>alert(1)</script>"

# A module of user samplers, written into a temporary directory on PYTHONPATH.
USER_SAMPLERS = textwrap.dedent(
    '''
    import time
    import types
    import torch
    from autospec.samplers import Sequential


    class UniformSampler:
        """Wrong on purpose: every coordinate uniform, whatever the target."""

        exact = True  # it claims exactness, so the audit must fail it
        name = "<script>alert(1)</script>"

        def sample(self, oracle, num_samples, rng):
            probs = torch.full((num_samples, oracle.n, oracle.q), 1.0 / oracle.q, dtype=torch.float64)
            oracle.marginals(torch.full((num_samples, oracle.n), -1, dtype=torch.long))
            return types.SimpleNamespace(values=rng.categorical(probs))


    class SlowSequential(Sequential):
        """Correct, but slow: gives a test time to interrupt an audit between cells."""

        def __init__(self):
            super().__init__()
            self.name = "SlowSequential"

        def sample(self, oracle, num_samples, rng):
            time.sleep(float(__import__("os").environ.get("AUTOSPEC_TEST_SLEEP", "1.0")))
            return super().sample(oracle, num_samples, rng)


    uniform = UniformSampler()
    '''
)

VOLATILE = re.compile(r"<!-- volatile -->.*?<!-- /volatile -->|<span class=\"timing\">[^<]*</span>", re.S)


def write_user_module(directory: Path, name: str = "user_samplers") -> str:
    (directory / f"{name}.py").write_text(USER_SAMPLERS)
    return name


def cli_env(extra_path: Path | None = None) -> dict:
    env = dict(os.environ)
    paths = [str(extra_path)] if extra_path else []
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def autospec_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "verification.cli", *args]


def run_cli(*args: str, cwd: Path, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(autospec_cmd(*args), cwd=cwd, env=env or cli_env(), capture_output=True, text=True,
                          timeout=timeout)


def load(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def stable_html(html: str) -> str:
    """The report without the parts that legitimately change between equal runs."""
    return VOLATILE.sub("", html)
