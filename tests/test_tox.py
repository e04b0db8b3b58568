"""tox.ini: every environment that installs the package stays on the CPU torch and takes only the extras it uses.

(`tox -e type` once pulled a CUDA torch with its nvidia libraries, 6.2 GB, just to run mypy.)
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

TOX = Path(__file__).resolve().parents[1] / "tox.ini"
CPU_TORCH = "torch==2.13.0"
# The extras each environment may install: what its commands import.
ALLOWED_EXTRAS = {"py": {"test", "dask", "peers"}, "audit": {"peers"}, "depth": set(), "type": set(), "lint": set()}


def _config() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(TOX)
    return parser


def _setting(parser, env: str, key: str) -> str | None:
    section = "testenv" if env == "py" else f"testenv:{env}"
    for name in (section, "testenv"):
        if parser.has_option(name, key):
            return parser.get(name, key)
    return None


def _expand(parser, text: str) -> list[str]:
    """tox's {[section]key} substitution, then one item a line."""
    text = re.sub(r"\{\[([^\]]+)\]([^}]+)\}", lambda m: parser.get(m.group(1), m.group(2)), text or "")
    return [line.strip() for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("env", sorted(ALLOWED_EXTRAS))
def test_every_tox_environment_stays_on_the_cpu_torch_with_only_its_extras(env):
    parser = _config()
    section = "testenv" if env == "py" else f"testenv:{env}"
    assert parser.has_section(section), section
    skip_install = (_setting(parser, env, "skip_install") or "false").strip().lower() == "true"
    deps = _expand(parser, _setting(parser, env, "deps"))
    extras = set(_expand(parser, _setting(parser, env, "extras")))
    if skip_install:
        assert not any(d.startswith("torch") for d in deps), deps  # nothing that needs torch at all
        return
    assert deps and deps[0] == CPU_TORCH, f"{env}: deps must start with {CPU_TORCH}, got {deps}"
    assert extras <= ALLOWED_EXTRAS[env], f"{env} installs extras it does not use: {sorted(extras - ALLOWED_EXTRAS[env])}"
