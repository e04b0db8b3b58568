"""pytest plugin for suites that check samplers (entry point ``pytest11``: autospec).

Markers
  ``@pytest.mark.statistical(alpha=1e-4)``: a test whose failure has a stated
  false-fail rate; the summary adds up the alphas of the statistical tests run.
  ``@pytest.mark.slow``: long checks (deselect with ``-m "not slow"``).

Options
  ``--autospec-seed S`` (default 0), ``--autospec-alpha A`` (overrides every
  marker's alpha), ``--autospec-budget N`` (samples per check).

Fixtures
  ``autospec_seed``, ``autospec_alpha``, ``autospec_budget``;
  ``check_exact_sampler(sampler, target, **kw)``: runs ``check_exact`` with the
  seed, alpha and budget above and fails the test with the evidence (worst
  cells, p-value, alpha, sample size, TV bound) when the sampler is not exact;
  ``tabular_target``, ``tabular_target_with_zeros``, ``markov_target``,
  ``builtin_targets`` (the audit's targets by name).

Heavy imports (torch) happen inside the fixtures, so loading the plugin is cheap.
"""

from __future__ import annotations

import pytest

DEFAULT_ALPHA = 1e-4
_EVIDENCE = pytest.StashKey[list]()
_ALPHAS = pytest.StashKey[list]()

MARKERS = {
    "statistical": "statistical(alpha=1e-4): a statistical check with false-fail rate alpha (autospec plugin)",
    "slow": "slow: long-running checks kept out of the default suite",
}


def pytest_addoption(parser):
    group = parser.getgroup("autospec", "autospec: exactness checks of samplers")
    group.addoption("--autospec-seed", type=int, default=0, metavar="S", help="seed for the autospec fixtures' checks (default 0)")
    group.addoption("--autospec-alpha", type=float, default=None, metavar="A",
                    help="false-fail rate of each check (overrides @statistical(alpha=...); default 1e-4)")
    group.addoption("--autospec-budget", type=int, default=None, metavar="N",
                    help="samples per statistical check (default: check_exact's default)")


def pytest_configure(config):
    registered = {line.split(":")[0].split("(")[0].strip() for line in config.getini("markers")}
    for name, line in MARKERS.items():
        if name not in registered:  # idempotent: a conftest.py or pyproject may register them too
            config.addinivalue_line("markers", line)
    config.stash[_ALPHAS] = []
    alpha = config.getoption("--autospec-alpha", default=None)
    if alpha is not None and not 0 < alpha < 1:
        raise pytest.UsageError(f"--autospec-alpha must lie in (0, 1), got {alpha}")
    budget = config.getoption("--autospec-budget", default=None)
    if budget is not None and budget < 1:
        raise pytest.UsageError(f"--autospec-budget must be a positive number of samples, got {budget}")


def pytest_runtest_setup(item):
    marker = item.get_closest_marker("statistical")
    if marker is not None:
        alpha = item.config.getoption("--autospec-alpha") or marker.kwargs.get("alpha", DEFAULT_ALPHA)
        item.config.stash[_ALPHAS].append((item.nodeid, float(alpha)))
    item.stash[_EVIDENCE] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    evidence = item.stash.get(_EVIDENCE, [])
    if report.when == "call" and report.failed and evidence:
        report.sections.append(("autospec evidence (checks that passed)", "\n\n".join(evidence)))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    alphas = config.stash.get(_ALPHAS, [])
    if alphas:
        total = sum(a for _, a in alphas)
        terminalreporter.write_line(
            f"autospec: {len(alphas)} statistical test(s), sum of alphas {total:.3g} "
            f"(the chance that any correct sampler fails by bad luck is at most this), seed {config.getoption('--autospec-seed')}"
        )


# ---------------------------------------------------------------- fixtures

@pytest.fixture
def autospec_seed(request) -> int:
    return int(request.config.getoption("--autospec-seed"))


@pytest.fixture
def autospec_alpha(request) -> float:
    option = request.config.getoption("--autospec-alpha")
    if option is not None:
        return float(option)
    marker = request.node.get_closest_marker("statistical")
    return float(marker.kwargs.get("alpha", DEFAULT_ALPHA)) if marker is not None else DEFAULT_ALPHA


@pytest.fixture
def autospec_budget(request):
    return request.config.getoption("--autospec-budget")


class SamplerNotExact(AssertionError):
    """A statistical check rejected exactness; the message is the evidence."""


@pytest.fixture
def check_exact_sampler(request, autospec_seed, autospec_alpha, autospec_budget):
    """``check(sampler, target, **kw) -> CheckResult``; fails the test with the evidence."""
    from verification.check import check_exact

    def check(sampler, target, **kwargs):
        kwargs.setdefault("alpha", autospec_alpha)
        kwargs.setdefault("seed", autospec_seed)
        if autospec_budget is not None:
            kwargs.setdefault("num_samples", autospec_budget)
        result = check_exact(sampler, target, **kwargs)
        if not result.passed:  # the evidence goes in the failure message (once), not also in a report section
            __tracebackhide__ = True
            raise SamplerNotExact(
                f"sampler {result.sampler} is not exact on {result.target} "
                f"(p = {result.p_value:.3g} <= alpha = {result.alpha:g}, seed {kwargs['seed']}):\n{result.summary()}"
            )
        request.node.stash[_EVIDENCE].append(result.summary())  # shown if the test fails later, for another reason
        return result

    return check


@pytest.fixture
def tabular_target():
    from autospec.targets import TabularTarget

    return TabularTarget.random(3, 3, seed=12, name="tab-n3q3")


@pytest.fixture
def tabular_target_with_zeros():
    from autospec.targets import TabularTarget

    return TabularTarget.random(4, 2, seed=13, zero_fraction=0.25, name="tab-n4q2-zeros")


@pytest.fixture
def markov_target():
    from autospec.targets.markov_chain import MarkovChainTarget

    return MarkovChainTarget.random(12, 2, seed=16, name="markov-n12q2")


@pytest.fixture
def builtin_targets():
    """The audit's built-in discrete targets, by name (built lazily on access)."""
    from verification.audit.registry import build_target, target_keys

    class _Targets(dict):
        def __missing__(self, key):
            value = build_target(key)
            self[key] = value
            return value

    targets = _Targets()
    targets.names = target_keys()  # type: ignore[attr-defined]
    return targets
