"""The pytest plugin, exercised on users' test files through pytester."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

WRONG = '''
import pytest, torch
from types import SimpleNamespace

class Uniform:
    name = "my-uniform-sampler"
    def sample(self, oracle, num_samples, rng):
        probs = torch.full((num_samples, oracle.n, oracle.q), 1.0 / oracle.q, dtype=torch.float64)
        return SimpleNamespace(values=rng.categorical(probs))

@pytest.mark.statistical(alpha=1e-3)
def test_my_sampler(check_exact_sampler, tabular_target):
    check_exact_sampler(Uniform(), tabular_target)
'''

RIGHT = '''
import pytest
from autospec.samplers import SequenceSpeculative

@pytest.mark.statistical(alpha=1e-3)
def test_reference(check_exact_sampler, tabular_target_with_zeros, autospec_alpha, autospec_seed, autospec_budget):
    result = check_exact_sampler(SequenceSpeculative(2), tabular_target_with_zeros)
    assert result.passed and result.alpha == autospec_alpha
    assert result.num_samples == autospec_budget

def test_fixtures(markov_target, builtin_targets):
    assert markov_target.n == 12 and builtin_targets["tab-n3q3"].q == 3 and "tab-n3q3" in builtin_targets.names
'''


def test_plugin_fails_a_wrong_sampler_with_the_evidence(pytester):
    pytester.makepyfile(test_user=WRONG)
    result = pytester.runpytest("-p", "no:cacheprovider", "--autospec-budget", "3000")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "my-uniform-sampler is not exact" in text
    assert "alpha = 0.001" in text and "p = " in text and "3000 samples" in text
    assert "observed" in text and "expected" in text  # the worst cells
    # the evidence once in the failure report, not twice (pytest's own short summary repeats the whole message
    # when it runs under CI=true, so only the part before it is the plugin's output)
    report = text.split("short test summary info")[0]
    assert report.count("smallest TV detected with power 0.99") == 1, text
    assert "sum of alphas 0.001" in text


def test_plugin_shows_passed_checks_when_a_test_fails_later(pytester):
    # A point-mass target: a correct sampler always draws its one cell, so the inner check passes surely (p = 1).
    pytester.makepyfile(test_user='''
import torch
from autospec.samplers import Sequential
from autospec.targets import TabularTarget

def test_then_fails(check_exact_sampler):
    probs = torch.zeros(2, 2, dtype=torch.float64)
    probs[1, 0] = 1.0
    check_exact_sampler(Sequential(), TabularTarget(probs, name="point-mass"), seed=123)
    assert False, "something else went wrong"
''')
    result = pytester.runpytest("-p", "no:cacheprovider", "--autospec-budget", "500")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "autospec evidence" in text and text.count("smallest TV detected with power 0.99") == 1, text


@pytest.mark.statistical(alpha=2e-5)  # the inner check at --autospec-alpha 0.00002
def test_plugin_passes_a_correct_sampler_and_options_reach_fixtures(pytester):
    pytester.makepyfile(test_user=RIGHT)
    result = pytester.runpytest("-p", "no:cacheprovider", "--autospec-budget", "4000", "--autospec-seed", "3",
                                "--autospec-alpha", "0.00002")
    result.assert_outcomes(passed=2)
    assert "1 statistical test(s), sum of alphas 2e-05" in result.stdout.str()


def test_markers_registered_once_even_with_a_conftest(pytester):
    pytester.makeconftest('''
def pytest_configure(config):
    config.addinivalue_line("markers", "statistical(alpha): registered by the project too")
''')
    pytester.makepyfile(test_x="import pytest\n@pytest.mark.slow\ndef test_a():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--strict-markers", "--markers")
    lines = [line for line in result.stdout.lines if line.startswith("@pytest.mark.statistical")]
    assert len(lines) == 1, lines
    assert any(line.startswith("@pytest.mark.slow") for line in result.stdout.lines)
    assert pytester.runpytest("-p", "no:cacheprovider", "--strict-markers").ret == 0


def test_bad_option_values_are_usage_errors(pytester):
    pytester.makepyfile(test_x="def test_a():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--autospec-alpha", "2")
    assert result.ret != 0
    assert "--autospec-alpha must lie in (0, 1)" in result.stderr.str()


def test_strategies_generate_tables_with_zero_cells(pytester):
    pytester.makepyfile(test_h='''
from hypothesis import given, settings, HealthCheck
from verification.strategies import tabular_targets, builtin_samplers
from verification import exact_law

@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(tabular_targets(max_n=2, max_q=3, min_zeros=1), builtin_samplers(max_block=2))
def test_exact(target, sampler):
    assert (target.probs == 0).any()
    assert abs(float(target.probs.sum()) - 1) < 1e-9
    assert exact_law(sampler, target).tv < 1e-10
''')
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
