"""verification.chain_depth: the audit stage's cells, the experiments' numbers, the command."""

from verification import chain_depth


def test_audit_stage_is_registered_and_plans_proofs_and_mutants():
    from verification.audit import registry

    stages = {stage.name: stage for stage in registry.stages()}
    assert "chains" in stages
    cells = stages["chains"].plan(type("Config", (), {"mode": "quick"})())
    checks = {cell["check"] for cell in cells}
    assert {"parallel-dpp-exact", "glauber-stationarity", "parallel-glauber-law", "sparsification-stationarity"} <= checks
    assert sum(cell["mutant"] for cell in cells) >= 4
    full = stages["chains"].plan(type("Config", (), {"mode": "full"})())
    assert sum(cell["mutant"] for cell in full) == 9


def test_a_proof_cell_and_a_mutant_cell(one_thread):
    cells = {cell["id"]: cell for cell in chain_depth.plan_chains(type("Config", (), {"mode": "quick"})())}
    proof = chain_depth.run_chains_cell(cells["chains/glauber-stationarity"], 0)
    assert proof["verdict"] == "pass" and max(proof["evidence"]["tv_mu_K_vs_mu"].values()) < 1e-12
    mutant = chain_depth.run_chains_cell(cells["chains/mutant:glauber-unconditional-redraw"], 0)
    assert mutant["verdict"] == "caught" and mutant["evidence"]["number"] > 1e-3


def test_exponent_fit_recovers_a_known_power():
    xs = [4, 4, 16, 16, 64, 64]
    ys = [2 * x**0.5 * f for x, f in zip(xs, [0.9, 1.1] * 3)]
    fit = chain_depth.fit_exponent(xs, ys)
    assert abs(fit["slope"] - 0.5) < 1e-9 and fit["slope_ci"][0] < 0.5 < fit["slope_ci"][1]


def test_dpp_rounds_below_k_and_langevin_table_is_exact(one_thread):
    result = chain_depth.dpp_rounds_vs_k((9, 33), samples=2, trials=2)
    assert all(row["rounds_mean"] < row["sequential_rounds"] for row in result["rows"])
    table = chain_depth.langevin_kl_table(picards=(8,), epochs=(1, 16), d=2)
    assert table["kl"][0][1] < table["kl"][0][0]
    assert "rounds ~ k^" in chain_depth.format_dpp(result)


def test_command_rejects_bad_values(capsys):
    from verification.cli import main

    assert main(["chains", "--samples", "1"]) == 2
    try:
        code = main(["chains", "--trials", "x"])
    except SystemExit as error:
        code = error.code
    assert code == 2
    assert "--trials" in capsys.readouterr().err
