"""The README's "verify your own sampler" example runs as written, and its check bites."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    return next(b for b in blocks if "class MySampler" in b)


@pytest.mark.statistical(alpha=1e-4)  # assert_sampler_exact's default alpha on a correct sampler
def test_readme_example_runs(capsys):
    exec(compile(readme_example(), str(README), "exec"), {})
    assert float(capsys.readouterr().out.strip()) < 1e-10


def test_readme_example_catches_a_slip():
    # The same sampler reading every coordinate's law at the empty pinning: a plausible slip.
    wrong = readme_example().replace("oracle.marginals(x)", "oracle.marginals(torch.full_like(x, -1))")
    with pytest.raises(AssertionError, match="not exact"):
        exec(compile(wrong, str(README), "exec"), {})
