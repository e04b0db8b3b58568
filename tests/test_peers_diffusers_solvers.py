"""diffusers' fast solvers with the exact eps model of a Gaussian target: the affine-propagation law is right
(DDPM and DDIM eta=1 match the independent chain law), the Gaussian TV is exact, the fast solvers deviate."""

import math

import pytest
from scipy import integrate, stats

from verification.peers import PeerUnavailable
from verification.peers.diffusers_solvers import GaussianLaw, gaussian_kl, gaussian_tv, gaussian_w2


@pytest.fixture(scope="module")
def ds():
    from verification.peers import diffusers_solvers

    try:
        diffusers_solvers.load_diffusers()
    except PeerUnavailable as reason:
        pytest.skip(str(reason))
    return diffusers_solvers


@pytest.mark.parametrize("p, q", [((0.0, 1.0), (1.0, 1.0)), ((0.0, 1.0), (0.3, 4.0)), ((0.69, 0.27), (0.7, 0.09))])
def test_gaussian_distances_against_quadrature(p, q):
    P, Q = GaussianLaw(*p), GaussianLaw(*q)
    half_l1 = 0.5 * integrate.quad(lambda x: abs(stats.norm.pdf(x, P.mean, P.std) - stats.norm.pdf(x, Q.mean, Q.std)),
                                   -40, 40, limit=500, points=[P.mean, Q.mean])[0]
    assert gaussian_tv(P, Q) == pytest.approx(half_l1, abs=1e-9)
    kl = integrate.quad(lambda x: stats.norm.pdf(x, P.mean, P.std) * (stats.norm.logpdf(x, P.mean, P.std)
                                                                      - stats.norm.logpdf(x, Q.mean, Q.std)), -40, 40)[0]
    assert gaussian_kl(P, Q) == pytest.approx(kl, abs=1e-8)
    assert gaussian_w2(P, Q) == pytest.approx(math.hypot(P.mean - Q.mean, P.std - Q.std))


def test_ddpm_and_ddim_eta_one_match_the_chain_law_and_fast_solvers_do_not(ds):
    for K in (5, 20):
        chain = ds.ddpm_chain(K)
        for name in ("DDPM (reference)", "DDIM eta=1"):
            assert ds.gaussian_tv(ds.solver_law(name, K), chain) < 1e-5  # float32 scheduler buffers
        for name in ("DDIM eta=0", "DPM-Solver++ (2M)", "Euler"):
            assert ds.gaussian_tv(ds.solver_law(name, K), chain) > 1e-3
