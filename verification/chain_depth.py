"""Depth of the chain and approximate samplers, their audit stage, and the ``autospec chains`` command.

Three experiments, each returning plain dicts (rows) and printing a table:

* ``dpp_rounds_vs_k``: ParallelDPP on Fourier projection DPPs (n = 2k + 2):
  mean rounds and queries per k against the sequential chain rule's k rounds,
  and the OLS exponent of log rounds on log k (statsmodels) with its 95%
  interval; ``trials`` (M) trades queries for rounds.
* ``glauber_rounds_vs_steps``: ParallelGlauber against the T rounds of
  sequential Glauber on a Curie-Weiss model (same T-step law: proved by
  enumeration in the tests and the audit).
* ``langevin_rounds_vs_dim``: on Gaussian targets of dimension d, the fewest
  rounds (epochs x Picard sweeps) at which the chain's exact KL to mu is at
  most ``accuracy``, against the sequential chain's (epochs x window).

The audit stage "chains" proves the exactness claims on small instances
(ParallelDPP's law, Glauber's and sparsification's stationarity, parallel
Glauber's T-step law), tests Langevin samples against their exact chain law,
prints the KL table, and runs the chain mutants.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

__all__ = ["dpp_rounds_vs_k", "glauber_rounds_vs_steps", "langevin_rounds_vs_dim", "fit_exponent", "add_arguments",
           "run_from_args", "register_audit"]


def fit_exponent(xs, ys) -> dict:
    """OLS of log y on log x (one point per sample): slope, its 95% interval, intercept."""
    import statsmodels.api as sm

    X = sm.add_constant(np.log(np.asarray(xs, dtype=np.float64)))
    fit = sm.OLS(np.log(np.asarray(ys, dtype=np.float64)), X).fit()
    low, high = fit.conf_int(0.05)[1]
    return {"slope": float(fit.params[1]), "slope_ci": [float(low), float(high)], "intercept": float(fit.params[0]),
            "points": int(len(xs))}


# ---------------------------------------------------------------- experiments

def dpp_rounds_vs_k(ks=(9, 17, 33, 65, 129, 255), samples: int = 8, trials: int = 4, seed: int = 0) -> dict:
    from autospec import Randomness
    from autospec.samplers import ParallelDPP
    from autospec.targets import DPPTarget
    from autospec.targets.projection_dpp import ProjectionDPPOracle

    rows, xs, ys = [], [], []
    for k in ks:
        oracle = ProjectionDPPOracle(DPPTarget.fourier_projection(2 * k + 2, k))
        start = time.perf_counter()
        out = ParallelDPP(trials=trials).sample(oracle, samples, Randomness(seed + k))
        if not bool((out.values.sum(1) == k).all()):
            raise AssertionError(f"ParallelDPP returned sets of sizes {out.values.sum(1).tolist()} on a rank-{k} projection DPP")
        rounds = out.rounds.to(torch.float64)
        rows.append({"k": k, "n": 2 * k + 2, "trials": trials, "rounds_mean": float(rounds.mean()),
                     "rounds_sd": float(rounds.std()) if samples > 1 else 0.0, "queries_mean": float(out.queries.double().mean()),
                     "sequential_rounds": k, "seconds": time.perf_counter() - start})
        xs += [k] * samples
        ys += rounds.tolist()
    return {"rows": rows, "fit": fit_exponent(xs, ys), "samples": samples}


def dpp_trials_tradeoff(k: int = 129, trials=(1, 2, 4, 8, 16), samples: int = 8, seed: int = 0) -> list[dict]:
    """Rounds and queries of ParallelDPP against M at one k."""
    from autospec import Randomness
    from autospec.samplers import ParallelDPP
    from autospec.targets import DPPTarget
    from autospec.targets.projection_dpp import ProjectionDPPOracle

    oracle = ProjectionDPPOracle(DPPTarget.fourier_projection(2 * k + 2, k))
    rows = []
    for M in trials:
        out = ParallelDPP(trials=M).sample(oracle, samples, Randomness(seed + M))
        rows.append({"k": k, "trials": M, "rounds_mean": float(out.rounds.double().mean()),
                     "queries_mean": float(out.queries.double().mean())})
    return rows


def glauber_rounds_vs_steps(steps=(64, 256, 1024), n: int = 64, beta: float = 0.5, lookahead: int = 8, samples: int = 2,
                            seed: int = 0) -> list[dict]:
    from autospec import Randomness
    from autospec.samplers import ParallelGlauber
    from autospec.targets import CurieWeissTarget

    oracle = CurieWeissTarget(n, beta=beta).oracle()
    rows = []
    for T in steps:
        out = ParallelGlauber(T, torch.zeros(n, dtype=torch.long), lookahead=lookahead).sample(oracle, samples, Randomness(seed + T))
        rows.append({"T": T, "n": n, "lookahead": lookahead, "rounds_mean": float(out.rounds.double().mean()),
                     "queries_mean": float(out.queries.double().mean()), "sequential_rounds": T})
    return rows


def _rounds_to_accuracy(target, make, picard: int, accuracy: float, max_epochs: int) -> int | None:
    """Fewest epochs (times picard) with exact KL(chain || mu) <= accuracy; None if not within max_epochs."""
    from verification.langevin_law import GaussianLaw, gaussian_kl, picard_chain_law

    mu = GaussianLaw(target.mean.cpu(), target.cov.cpu())
    for epochs in range(1, max_epochs + 1):
        if gaussian_kl(picard_chain_law(target, make(picard, epochs)), mu) <= accuracy:
            return epochs * picard
    return None


def langevin_rounds_vs_dim(dims=(2, 4, 8, 16), accuracy: float = 0.05, step: float = 0.05, window: int = 8,
                           max_epochs: int = 40, seed: int = 0) -> list[dict]:
    from autospec.samplers import ParallelLangevin
    from autospec.targets import GaussianTarget

    rows = []
    for d in dims:
        target = GaussianTarget.random(d, seed=seed + d)
        start = [2.0] * d

        def make(picard, epochs, start=start):
            return ParallelLangevin(step, window=window, epochs=epochs, picard=picard, start=start)

        sequential = _rounds_to_accuracy(target, make, window, accuracy, max_epochs)
        best = None
        for picard in range(1, window + 1):
            rounds = _rounds_to_accuracy(target, make, picard, accuracy, max_epochs)
            if rounds is not None and (best is None or rounds < best[0]):
                best = (rounds, picard)
        rows.append({"d": d, "accuracy_kl": accuracy, "sequential_rounds": sequential,
                     "parallel_rounds": best[0] if best else None, "picard": best[1] if best else None})
    return rows


def langevin_kl_table(picards=(1, 2, 4, 8), epochs=(1, 2, 4, 8, 16), d: int = 4, step: float = 0.05, window: int = 8,
                      kind: str = "overdamped", seed: int = 0) -> dict:
    from autospec.samplers import ParallelLangevin
    from autospec.targets import GaussianTarget
    from verification.langevin_law import kl_table

    target = GaussianTarget.random(d, seed=seed + d)
    table = kl_table(target, lambda p, e: ParallelLangevin(step, window=window, epochs=e, picard=p, kind=kind, start=[2.0] * d),
                     list(picards), list(epochs))
    return {"picards": list(picards), "epochs": list(epochs), "kl": table.tolist(), "d": d, "step": step, "window": window,
            "kind": kind}


# ---------------------------------------------------------------- printing

def format_dpp(result: dict) -> str:
    lines = ["ParallelDPP on Fourier projection DPPs (n = 2k + 2), rounds per sample:",
             f"{'k':>5} {'rounds':>8} {'sd':>6} {'queries':>9} {'sequential':>10}"]
    for r in result["rows"]:
        lines.append(f"{r['k']:>5} {r['rounds_mean']:>8.2f} {r['rounds_sd']:>6.2f} {r['queries_mean']:>9.1f} {r['sequential_rounds']:>10}")
    fit = result["fit"]
    lines.append(f"rounds ~ k^{fit['slope']:.3f}, 95% CI [{fit['slope_ci'][0]:.3f}, {fit['slope_ci'][1]:.3f}] "
                 f"(OLS over {fit['points']} samples); sequential: k^1")
    return "\n".join(lines)


def format_rows(title: str, rows: list[dict]) -> str:
    if not rows:
        return title
    keys = list(rows[0])
    lines = [title, "  ".join(f"{k:>16}" for k in keys)]
    for r in rows:
        lines.append("  ".join(f"{v:>16.4g}" if isinstance(v, float) else f"{v!s:>16}" for v in r.values()))
    return "\n".join(lines)


def format_kl(table: dict) -> str:
    lines = [f"exact KL(chain || mu), {table['kind']} Langevin, d = {table['d']}, h = {table['step']}, window M = {table['window']}",
             "P \\ epochs".rjust(10) + " " + " ".join(f"{e:>10}" for e in table["epochs"])]
    for p, row in zip(table["picards"], table["kl"]):
        lines.append(f"{p:>10} " + " ".join(f"{v:>10.4g}" for v in row))
    return "\n".join(lines)


# ---------------------------------------------------------------- command line

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="k to 65, T to 256, d to 8 (about a minute)")
    parser.add_argument("--samples", type=int, default=None, help="samples per k (default 8, 4 with --quick)")
    parser.add_argument("--trials", type=int, default=4, help="ParallelDPP trials M (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")


def run_from_args(args) -> int:
    samples = args.samples if args.samples is not None else (4 if args.quick else 8)
    if samples < 2 or args.trials < 1:
        print("autospec chains: --samples must be >= 2 and --trials >= 1", flush=True)
        return 2
    print(f"load average {os.getloadavg()}")
    ks = (9, 17, 33, 65) if args.quick else (9, 17, 33, 65, 129, 255)
    print(format_dpp(dpp_rounds_vs_k(ks, samples, args.trials, args.seed)))
    print(format_rows("ParallelDPP: M trials trade queries for rounds", dpp_trials_tradeoff(33 if args.quick else 129, seed=args.seed)))
    steps = (64, 256) if args.quick else (64, 256, 1024)
    print(format_rows("ParallelGlauber vs sequential Glauber (Curie-Weiss n = 64, beta = 0.5)", glauber_rounds_vs_steps(steps, seed=args.seed)))
    dims = (2, 4, 8) if args.quick else (2, 4, 8, 16)
    print(format_rows("Langevin rounds to exact KL <= 0.05", langevin_rounds_vs_dim(dims, seed=args.seed)))
    print(format_kl(langevin_kl_table(seed=args.seed)))
    return 0


# ---------------------------------------------------------------- audit stage

# check -> (sampler, instance)
_CELLS = {
    "parallel-dpp-exact": ("ParallelDPP", "projection DPP n=5 k=2; L-ensemble n=5 r=2"),
    "glauber-stationarity": ("Glauber", "tabular n=3 q=3; Ising SK n=4; Curie-Weiss n=5"),
    "parallel-glauber-law": ("ParallelGlauber", "tabular n=3 q=2, T=3"),
    "sparsification-stationarity": ("DomainSparsification", "projection DPP n=5 k=2, t=3"),
    "langevin-chain-law": ("ParallelLangevin", "Gaussian d=3"),
}
_QUICK_MUTANTS = ["glauber-unconditional-redraw", "dpp-unconditioned-acceptance", "langevin-overdamped-noise-scale",
                  "langevin-underdamped-noise-scale"]


def plan_chains(config) -> list[dict]:
    from verification.mutants import catalogue

    cells = [{"id": f"chains/{name}", "stage": "chains", "sampler": sampler, "sampler_ref": name,
              "claims_exact": True, "mutant": False, "target": instance, "check": name, "params": {}}
             for name, (sampler, instance) in _CELLS.items()]
    quick = getattr(config, "mode", "quick") == "quick"
    for mutant in catalogue("chain"):
        if quick and mutant.name not in _QUICK_MUTANTS:
            continue
        cells.append({"id": f"chains/mutant:{mutant.name}", "stage": "chains", "sampler": f"mutant:{mutant.name}",
                      "sampler_ref": f"mutant:{mutant.name}", "claims_exact": False, "mutant": True, "target": "its family's instance",
                      "check": "chain-mutant", "params": {"mutant": mutant.name, "description": " ".join(mutant.description.split())}})
    return cells


def _cell_evidence(name: str) -> tuple[bool, dict]:
    """(the claim holds, evidence) for one of the proofs of ``_CELLS``."""
    from autospec import Randomness
    from autospec.samplers import DomainSparsification, Glauber, ParallelDPP, ParallelGlauber, ParallelLangevin
    from autospec.targets import CurieWeissTarget, DPPTarget, GaussianTarget, IsingTarget, TabularTarget
    from autospec.targets.projection_dpp import SpectralDPPTarget
    from verification.exact import exact_law
    from verification.langevin_law import gaussian_law_test, picard_chain_law
    from verification.markov import as_table_target, kernel_matrix, stationarity, tv_curve

    if name == "parallel-dpp-exact":
        projection = exact_law(ParallelDPP(trials=1), as_table_target(DPPTarget.random(5, 2, "projection", seed=7)))
        spectral = SpectralDPPTarget.random(5, 2, seed=0)
        law = exact_law(ParallelDPP(trials=1, components=2), as_table_target(spectral))
        item_tv = 0.5 * float((law.probs.sum(dim=(0, 1)) - spectral.item_law()).abs().sum())
        ok = projection.tv < 1e-10 and law.tv < 1e-10 and item_tv < 1e-10 and projection.unexplored_mass < 1e-12
        return ok, {"projection_dpp_n5_k2_tv": projection.tv, "l_ensemble_n5_r2_tv": item_tv, "joint_with_labels_tv": law.tv}
    if name == "glauber-stationarity":
        targets = {"tabular": TabularTarget.random(3, 3, seed=1), "ising-sk": IsingTarget.sk(4, beta=0.9, seed=0),
                   "curie-weiss": CurieWeissTarget(5, beta=1.2, h=0.1)}
        tvs = {key: stationarity(kernel_matrix(lambda x: Glauber(1, x), t), t).tv for key, t in targets.items()}
        return all(v < 1e-12 for v in tvs.values()), {"tv_mu_K_vs_mu": tvs}
    if name == "parallel-glauber-law":
        table = as_table_target(TabularTarget.random(3, 2, seed=2))
        start = torch.tensor([0, 1, 0])
        seq, par = exact_law(Glauber(3, start), table), exact_law(ParallelGlauber(3, start, lookahead=2), table)
        tv = 0.5 * float((seq.probs - par.probs).abs().sum())
        return tv < 1e-10, {"tv_to_sequential_T3": tv, "rounds_sequential": seq.expected_rounds, "rounds_parallel": par.expected_rounds}
    if name == "sparsification-stationarity":
        target = DPPTarget.random(5, 2, "projection", seed=3)
        kernel = kernel_matrix(lambda x: DomainSparsification(1, x, 3, slack=1.3), target)
        result = stationarity(kernel, target)
        curve = tv_curve(kernel, target, kernel.cells[kernel.rows[0]], [0, 1, 4, 16, 64])
        return result.tv < 1e-12, {"tv_mu_K_vs_mu": result.tv, "tv_curve": curve}
    if name == "langevin-chain-law":
        target = GaussianTarget.random(3, seed=2)
        results = {}
        for kind in ("overdamped", "underdamped"):
            sampler = ParallelLangevin(0.1, window=8, epochs=3, picard=2, kind=kind, start=[2.0, 0.0, -1.0])
            test = gaussian_law_test(sampler.sample(target, 4000, Randomness(11)).values, picard_chain_law(target, sampler), 1e-6)
            results[kind] = {"p_value": test.p_value, "alpha": test.alpha}
        ok = all(r["p_value"] >= r["alpha"] for r in results.values())
        return ok, {"gaussian_law_test": results, "kl_table": langevin_kl_table(picards=(1, 2, 8), epochs=(1, 4, 16))}
    raise KeyError(f"unknown chains cell {name!r}")


def run_chains_cell(spec: dict, seed: int) -> dict:
    if spec.get("mutant"):
        from verification.mutants.chains import check_chain_mutant

        verdict = check_chain_mutant(spec["params"]["mutant"])
        evidence = {"check": verdict.check, "number": verdict.number, "sibling_number": verdict.sibling_number,
                    "sibling_passes": verdict.sibling_passes}
        return {"verdict": "caught" if verdict.caught and verdict.sibling_passes else "missed", "evidence": evidence}
    ok, evidence = _cell_evidence(spec["check"])
    return {"verdict": "pass" if ok else "fail", "evidence": evidence}


HOW_TO_READ = ("Markov chains and approximate samplers: pass means the claim is proved on a small instance by "
               "enumeration (ParallelDPP's law; mu K = mu for Glauber and sparsification; parallel Glauber's T-step law "
               "equals the sequential chain's) or, for Langevin, that samples match the exact Gaussian chain law; "
               "every chain mutant must be caught.")


def register_audit(registry) -> None:
    title = "Markov chains and approximate samplers (ParallelDPP, Glauber, sparsification, Langevin)"
    try:
        stage = registry.Stage("chains", plan_chains, run_chains_cell, title, order=70, how_to_read=HOW_TO_READ)
    except TypeError:  # a registry without how_to_read
        stage = registry.Stage("chains", plan_chains, run_chains_cell, title, order=70)
    registry.register_stage(stage)


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    raise SystemExit(run_from_args(parser.parse_args()))
