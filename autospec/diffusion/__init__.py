"""Diffusion setting: time grids, the VP (DDPM) map, denoising oracles and exact chain laws."""

from autospec.diffusion.chain_law import GaussianChainLaw, OneDimChainLaw, ProductChainLaw
from autospec.diffusion.denoiser import CountingDenoiser, Denoiser, DenoiserError, FunctionDenoiser
from autospec.diffusion.grid import (
    GRID_KINDS,
    alpha_bar_from_time,
    check_times,
    denoiser_from_epsilon,
    epsilon_from_denoiser,
    localization_from_vp,
    time_from_alpha_bar,
    time_grid,
    vp_from_localization,
)

__all__ = [
    "time_grid",
    "check_times",
    "GRID_KINDS",
    "alpha_bar_from_time",
    "time_from_alpha_bar",
    "vp_from_localization",
    "localization_from_vp",
    "denoiser_from_epsilon",
    "epsilon_from_denoiser",
    "Denoiser",
    "DenoiserError",
    "CountingDenoiser",
    "FunctionDenoiser",
    "GaussianChainLaw",
    "OneDimChainLaw",
    "ProductChainLaw",
]
