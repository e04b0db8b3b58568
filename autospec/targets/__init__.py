"""Exact targets: tables, structured discrete models and (diffusion) continuous laws."""

from autospec.targets.statistics import ExactStatistic
from autospec.targets.tabular import TabularOracle, TabularTarget

__all__ = ["ExactStatistic", "TabularTarget", "TabularOracle"]
