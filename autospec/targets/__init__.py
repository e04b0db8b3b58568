"""Exact targets: tables, structured discrete models and (diffusion) continuous laws."""

from autospec.targets.bounded import PointMassTarget
from autospec.targets.curie_weiss import CurieWeissTarget
from autospec.targets.dpp import DPPTarget
from autospec.targets.gaussian import GaussianTarget
from autospec.targets.hmm import HMMTarget
from autospec.targets.ising import IsingTarget
from autospec.targets.markov_chain import MarkovChainTarget
from autospec.targets.mixture import GaussianMixtureTarget, ProductMixtureTarget
from autospec.targets.perturbed import MixtureOracle, TemperedOracle
from autospec.targets.projection_dpp import ProjectionDPPOracle, SpectralDPPTarget
from autospec.targets.statistics import ExactStatistic
from autospec.targets.tabular import TabularOracle, TabularTarget
from autospec.targets.xor import XorTarget

__all__ = ["ExactStatistic", "TabularTarget", "TabularOracle", "MarkovChainTarget", "HMMTarget", "CurieWeissTarget", "DPPTarget", "XorTarget", "IsingTarget", "GaussianTarget", "GaussianMixtureTarget", "ProductMixtureTarget", "PointMassTarget", "TemperedOracle", "MixtureOracle", "ProjectionDPPOracle", "SpectralDPPTarget"]
