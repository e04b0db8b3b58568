"""depth.py's "best fixed block": chosen on one half of the samples, reported on the other (issue 13, item 8).

A per-n minimum over block sizes taken from the same runs it reports is biased low (the minimum of
noisy means is below the minimum of the true means), which biases the fitted exponent."""

import numpy as np
import pytest

from verification import depth

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def _record(policy, rounds, n=64):
    rounds = np.asarray(rounds, dtype=float)
    return {"family": "f", "n": n, "sampler": "sequence", "policy": policy, "num_samples": int(rounds.size),
            "rounds_mean": float(rounds.mean()), "rounds_sd": float(rounds.std(ddof=1)) if rounds.size > 1 else 0.0, "queries_mean": float(rounds.mean()),
            "rounds_ci": [0.0, 0.0], "queries_ci": [0.0, 0.0], "halves": depth._halves(rounds, rounds)}


def _best(records):
    return [r for r in depth._with_best_fixed(records) if r["policy"] == "best-fixed"]


def test_best_fixed_is_selected_on_one_half_and_reported_on_the_other():
    # block 4: even-index samples (select half) mean 8, odd-index (report half) mean 12, overall 10;
    # block 16: 9 throughout.  Selection picks 4 on its select half and must report 12, not a minimum.
    records = [_record("4", [8, 12, 8, 12]), _record("16", [9, 9, 9, 9])]
    (best,) = _best(records)
    assert best["block_size"] == "4"
    assert best["rounds_mean"] == 12.0 and best["num_samples"] == 2


def test_a_single_sample_cannot_choose_and_report():
    assert _best([_record("4", [5.0]), _record("16", [7.0])]) == []


def test_best_fixed_is_unbiased_where_the_same_runs_minimum_is_biased_low():
    # Eight block sizes with the same law of rounds (mean 10): the honest best-fixed mean is 10 on average;
    # the minimum over the same runs' means sits about 1.4 standard errors below it.
    rng = np.random.default_rng(0)
    honest, same_runs = [], []
    for _ in range(200):
        records = [_record(str(b), rng.normal(10.0, 2.0, size=8)) for b in range(8)]
        honest.append(_best(records)[0]["rounds_mean"])
        same_runs.append(min(r["rounds_mean"] for r in records))
    standard_error = 2.0 / np.sqrt(4) / np.sqrt(200)  # of the mean over 200 reported half-means of 4 samples
    assert abs(np.mean(honest) - 10.0) < 4 * standard_error
    assert np.mean(same_runs) < 10.0 - 0.5  # the bias the old rule had, for scale


def test_run_depth_records_carry_halves_and_best_fixed_uses_them(tmp_path):
    config = depth.DepthConfig(ns=[16, 32], families=["markov"], samplers=["sequence"], fixed=[2, 4], adaptive=False,
                               samples={16: 6, 32: 6})
    results = depth.run_depth(config, str(tmp_path), log=lambda *a: None)
    fixed = [r for r in results["records"] if r["policy"] in ("2", "4")]
    assert all(r["halves"]["report"]["num_samples"] == 3 for r in fixed)
    for n in (16, 32):
        rows = [r for r in fixed if r["n"] == n]
        chosen = min(rows, key=lambda r: r["halves"]["select_rounds_mean"])
        (best,) = [r for r in depth._with_best_fixed(results["records"]) if r["policy"] == "best-fixed" and r["n"] == n]
        assert best["block_size"] == chosen["policy"]
        assert best["rounds_mean"] == chosen["halves"]["report"]["rounds_mean"]
    assert any(f["policy"] == "best-fixed" for f in results["fits"])
