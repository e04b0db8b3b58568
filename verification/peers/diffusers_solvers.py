"""diffusers' fast solvers driven by the exact epsilon model of a Gaussian target: their exact output laws.

Written against diffusers 0.42.1.  The target is N(m, s^2) in one dimension;
its exact epsilon prediction at noise level ab (alpha-bar) is
sqrt(1 - ab) (x - sqrt(ab) m) / (ab s^2 + 1 - ab), affine in x.  Every
solver step is then affine in the current sample and in the Gaussian noise it
injects, so the output is affine in (x_T, z_1, ..., z_J):

    x_out = c + a x_T + sum_j b_j z_j,   a law N(c, a^2 + sum_j b_j^2), exactly.

``solver_law`` finds c, a and the b_j by running the unmodified scheduler
loop once on a batch of basis inputs: row 0 starts at 0 with zero noise
(giving c), row 1 starts at x_T = 1 (giving a), row 2 + j gets noise 1 at
the j-th noise draw (``randn_tensor`` is replaced by a function that returns
these basis vectors; giving b_j).  The scheduler runs with its own float32
buffers; the eps model and the samples are float64.

Distances between one-dimensional Gaussians have closed forms: KL, W2
(sqrt((m1 - m2)^2 + (s1 - s2)^2)) and TV (integrate the density difference
between the points where the densities cross: ``gaussian_tv``).
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from verification.peers.diffusers_ddpm import load_diffusers, vp_chain_law

__all__ = ["WRITTEN_AGAINST", "SOLVERS", "solver_law", "ddpm_chain", "gaussian_tv", "gaussian_kl", "gaussian_w2", "GaussianLaw",
           "solver_table"]

WRITTEN_AGAINST = "0.42.1"

# name -> (scheduler class, constructor settings, step settings)
SOLVERS = {
    "DDPM (reference)": ("DDPMScheduler", {"variance_type": "fixed_small", "clip_sample": False}, {}),
    "DDIM eta=0": ("DDIMScheduler", {"clip_sample": False, "set_alpha_to_one": True}, {"eta": 0.0}),
    "DDIM eta=1": ("DDIMScheduler", {"clip_sample": False, "set_alpha_to_one": True}, {"eta": 1.0}),
    "DPMSolverMultistep (dpmsolver, 2nd order)": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver", "final_sigmas_type": "sigma_min"}, {}),
    "DPM-Solver++ (2M)": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}, {}),
    "UniPC (bh2)": ("UniPCMultistepScheduler", {}, {}),
    "Euler": ("EulerDiscreteScheduler", {}, {}),
    "Euler ancestral": ("EulerAncestralDiscreteScheduler", {}, {}),
    "Heun": ("HeunDiscreteScheduler", {}, {}),
}


@dataclass
class GaussianLaw:
    mean: float
    var: float

    @property
    def std(self) -> float:
        return math.sqrt(self.var)


def gaussian_kl(p: GaussianLaw, q: GaussianLaw) -> float:
    """KL(p || q) for one-dimensional Gaussians."""
    return 0.5 * (p.var / q.var + (p.mean - q.mean) ** 2 / q.var - 1.0 + math.log(q.var / p.var))


def gaussian_w2(p: GaussianLaw, q: GaussianLaw) -> float:
    return math.hypot(p.mean - q.mean, p.std - q.std)


def gaussian_tv(p: GaussianLaw, q: GaussianLaw) -> float:
    """Exact TV: the densities cross at the roots of a quadratic; TV = sum over the pieces where p > q of P - Q."""
    if abs(p.var - q.var) <= 1e-15 * max(p.var, q.var):
        return float(2 * stats.norm.cdf(abs(p.mean - q.mean) / (2 * p.std)) - 1)
    # log p - log q = A x^2 + B x + C
    A = 0.5 / q.var - 0.5 / p.var
    B = p.mean / p.var - q.mean / q.var
    C = 0.5 * q.mean**2 / q.var - 0.5 * p.mean**2 / p.var + 0.5 * math.log(q.var / p.var)
    roots = np.sort(np.roots([A, B, C]).real) if B * B - 4 * A * C > 0 else np.array([])
    edges = [-np.inf, *roots.tolist(), np.inf]
    tv = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        if np.isfinite(lo) and np.isfinite(hi):
            mid = 0.5 * (lo + hi)
        else:
            mid = hi - 1.0 if np.isfinite(hi) else (lo + 1.0 if np.isfinite(lo) else 0.0)
        if A * mid * mid + B * mid + C > 0:
            P = stats.norm.cdf(hi, p.mean, p.std) - stats.norm.cdf(lo, p.mean, p.std)
            Q = stats.norm.cdf(hi, q.mean, q.std) - stats.norm.cdf(lo, q.mean, q.std)
            tv += P - Q
    return float(tv)


class _Eps:
    """Exact eps prediction of N(mean, var); alpha-bar at a (possibly fractional) timestep through the schedulers'
    own sigma interpolation, sigma(t) = interp(t, 0..999, sqrt((1 - ab) / ab)), ab = 1 / (1 + sigma^2)."""

    def __init__(self, mean: float, var: float, alphas_cumprod: torch.Tensor):
        ab = alphas_cumprod.double().numpy()
        self.mean, self.var, self.sigmas = mean, var, np.sqrt((1 - ab) / ab)

    def __call__(self, x: torch.Tensor, t) -> torch.Tensor:
        sigma = float(np.interp(float(t), np.arange(len(self.sigmas)), self.sigmas))
        ab = 1.0 / (1.0 + sigma * sigma)
        return math.sqrt(1 - ab) * (x - math.sqrt(ab) * self.mean) / (ab * self.var + 1 - ab)


def solver_law(name: str, steps: int, mean: float = 0.7, std: float = 0.3, max_noise_draws: int | None = None) -> GaussianLaw:
    """Exact output law of the named solver (see ``SOLVERS``) with ``steps`` inference steps."""
    diffusers, _, _ = load_diffusers()
    class_name, settings, step_settings = SOLVERS[name]
    scheduler = getattr(diffusers, class_name)(num_train_timesteps=1000, beta_schedule="linear",
                                               prediction_type="epsilon", **settings)
    scheduler.set_timesteps(steps)
    eps = _Eps(mean, std**2, scheduler.alphas_cumprod)
    J = max_noise_draws or 2 * steps + 2
    rows = 2 + J
    module = importlib.import_module(type(scheduler).__module__)
    draws = []

    def basis_noise(shape, generator=None, device=None, dtype=None, layout=None):
        j = len(draws)
        if j >= J:
            raise RuntimeError(f"{name} drew noise more than {J} times")
        z = torch.zeros(shape, dtype=dtype or torch.float64)
        z[2 + j] = 1.0
        draws.append(j)
        return z

    saved = getattr(module, "randn_tensor", None)
    module.randn_tensor = basis_noise
    try:
        x = torch.zeros((rows, 1), dtype=torch.float64)
        x[1] = 1.0
        x = x * float(scheduler.init_noise_sigma)
        for t in scheduler.timesteps:
            model_input = scheduler.scale_model_input(x, t)
            x = scheduler.step(eps(model_input, t), t, x, **step_settings).prev_sample.to(torch.float64)
    finally:
        module.randn_tensor = saved
    out = x[:, 0]
    c = float(out[0])
    a = float(out[1] - out[0])  # per unit of x_T / init_noise_sigma, i.e. per standard-normal xi
    b = (out[2:2 + len(draws)] - out[0]).numpy()
    return GaussianLaw(c, a * a + float((b * b).sum()))


def ddpm_chain(steps: int, mean: float = 0.7, std: float = 0.3) -> GaussianLaw:
    """The K-step VP-DDPM chain's exact law (independent of diffusers' code, on DDPMScheduler's timesteps)."""
    _, DDPMScheduler, _ = load_diffusers()
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    scheduler.set_timesteps(steps)
    m, v = vp_chain_law(scheduler.timesteps.tolist(), mean, std)
    return GaussianLaw(m, v)


def solver_table(steps_list=(5, 10, 20, 50), mean: float = 0.7, std: float = 0.3, solvers=None) -> list[dict]:
    """One row per (solver, K): TV, KL, W2 to the target N(mean, std^2) and to the K-step DDPM chain."""
    target = GaussianLaw(mean, std**2)
    rows = []
    for name in solvers or SOLVERS:
        for K in steps_list:
            law, chain = solver_law(name, K, mean, std), ddpm_chain(K, mean, std)
            rows.append({"solver": name, "K": K, "mean": law.mean, "std": law.std,
                         "tv_target": gaussian_tv(law, target), "kl_target": gaussian_kl(law, target),
                         "w2_target": gaussian_w2(law, target), "tv_chain": gaussian_tv(law, chain),
                         "kl_chain": gaussian_kl(law, chain), "w2_chain": gaussian_w2(law, chain)})
    return rows
