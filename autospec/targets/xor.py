"""Uniform law over the solutions of a sparse random linear system A x = b over GF(2).

The system: equations on ``arity`` random variables each, right-hand sides
from a planted solution (so it is consistent), added one by one and skipped
when they would join constraint components into one of more than
``max_component`` variables.  At density m / n below the hypergraph's giant
component threshold few are skipped; the cap is what keeps exact
conditionals cheap at n = 4096.

Given a pinning, the components are independent, so each coordinate's law is
that of its component: uniform over the component's solutions that agree
with the pins (each coordinate then is determined, or exactly uniform).  The
solutions of every component (at most 2^max_component) are enumerated once,
as bit masks; a query tests all of them against the pins with integer bit
operations and counts ones with a batched matmul, grouped by component
solution count.  A pinning is infeasible iff some component has no agreeing
solution.
"""

from __future__ import annotations

import numpy as np
import torch

from autospec.oracles import ConditionalOracle, OracleAnswer, OracleSession, placeholder_marginals
from autospec.targets.statistics import ExactStatistic
from autospec.targets.structured import StructuredTarget, check_n_q, count_statistics, pair_statistic, single_statistic

__all__ = ["XorTarget", "XorOracle"]


class XorTarget(StructuredTarget):
    def __init__(self, n: int, equations, rhs, name: str | None = None, max_component: int = 12):
        check_n_q(n, 2, "XorTarget")
        self.n, self.q = n, 2
        self.equations = [tuple(int(v) for v in eq) for eq in equations]
        self.rhs = [int(b) & 1 for b in rhs]
        if len(self.equations) != len(self.rhs):
            raise ValueError(f"got {len(self.equations)} equations but {len(self.rhs)} right-hand sides")
        for eq in self.equations:
            if not eq or min(eq) < 0 or max(eq) >= n or len(set(eq)) != len(eq):
                raise ValueError(f"equation {eq} must list distinct variables in 0..{n - 1}")
        self.name = name or f"xor(n={n}, m={len(self.equations)})"
        self.components = _components(n, self.equations)
        if max(len(c) for c in self.components) > max_component:
            raise ValueError(f"a constraint component has {max(len(c) for c in self.components)} variables (> {max_component}); "
                             "solutions are enumerated per component")
        self.solutions = []  # per component: LongTensor [S, g] of its solutions (0/1)
        for comp in self.components:
            self.solutions.append(_solve(comp, self.equations, self.rhs))
            if self.solutions[-1].shape[0] == 0:
                raise ValueError(f"the system is inconsistent on variables {comp}")

    @classmethod
    def random(cls, n: int, density: float = 0.3, arity: int = 3, seed: int = 0, max_component: int = 10):
        g = np.random.default_rng(seed)
        planted = g.integers(0, 2, n)
        parent = list(range(n))
        size = [1] * n

        def find(a):
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        equations, rhs = [], []
        for _ in range(int(round(density * n))):
            eq = tuple(sorted(g.choice(n, size=min(arity, n), replace=False).tolist()))
            roots = {find(v) for v in eq}
            if sum(size[r] for r in roots) > max_component:
                continue
            roots = list(roots)
            for r in roots[1:]:
                parent[r] = roots[0]
                size[roots[0]] += size[r]
            equations.append(eq)
            rhs.append(int(planted[list(eq)].sum() % 2))
        return cls(n, equations, rhs, name=f"xor(n={n}, m={len(equations)}, seed={seed})", max_component=max_component)

    def oracle(self, device="cpu") -> "XorOracle":
        return XorOracle(self, device)

    def probability(self, values: torch.Tensor) -> torch.Tensor:
        values = values.to(torch.long)
        ok = torch.ones(values.shape[0], dtype=torch.bool)
        for eq, b in zip(self.equations, self.rhs):
            ok &= values[:, list(eq)].sum(-1) % 2 == b
        total = 1.0
        for sol in self.solutions:
            total *= sol.shape[0]
        return ok.to(torch.float64) / total

    def violations(self, values: torch.Tensor) -> torch.Tensor:
        """[N]: number of equations each sample violates (0 under the target)."""
        out = torch.zeros(values.shape[0], dtype=torch.long, device=values.device)
        for eq, b in zip(self.equations, self.rhs):
            out += (values[:, list(eq)].sum(-1) % 2 != b).to(torch.long)
        return out

    def ones_law(self) -> torch.Tensor:
        law = torch.ones(1, dtype=torch.float64)
        for sol in self.solutions:
            part = torch.bincount(sol.sum(1), minlength=sol.shape[1] + 1).to(torch.float64) / sol.shape[0]
            law = torch.from_numpy(np.convolve(law.numpy(), part.numpy()))
        return law

    def _where(self, i):
        for c, comp in enumerate(self.components):
            if i in comp:
                return c, comp.index(i)
        raise IndexError(i)

    def pair_marginal(self, i: int, j: int) -> torch.Tensor:
        ci, ki = self._where(i)
        cj, kj = self._where(j)
        if ci == cj:
            sol = self.solutions[ci]
            return torch.bincount(sol[:, ki] * 2 + sol[:, kj], minlength=4).to(torch.float64).reshape(2, 2) / sol.shape[0]
        return self.marginal(i).unsqueeze(1) * self.marginal(j).unsqueeze(0)

    def marginal(self, i: int) -> torch.Tensor:
        c, k = self._where(i)
        sol = self.solutions[c]
        return torch.bincount(sol[:, k], minlength=2).to(torch.float64) / sol.shape[0]

    def exact_statistics(self) -> list[ExactStatistic]:
        n = self.n
        m = len(self.equations)
        stats = count_statistics("number of ones", self.ones_law(), lambda v: v.sum(-1)) + [
            ExactStatistic("violated equations", torch.tensor([1.0, 0.0], dtype=torch.float64),
                           lambda v: (self.violations(v) > 0).to(torch.long), labels=["0", f"1..{m}"]),
        ]
        for i in sorted({0, n // 2}):
            stats.append(single_statistic(f"x[{i}]", i, self.marginal(i)))
        # pairs inside the largest components (the correlated ones), and one across components
        big = sorted(range(len(self.components)), key=lambda c: -len(self.components[c]))[:2]
        for c in big:
            comp = self.components[c]
            if len(comp) >= 2:
                stats.append(pair_statistic(f"(x[{comp[0]}], x[{comp[1]}])", comp[0], comp[1], self.pair_marginal(comp[0], comp[1])))
        if n >= 2:
            stats.append(pair_statistic(f"(x[0], x[{n - 1}])", 0, n - 1, self.pair_marginal(0, n - 1)))
        return stats


class XorOracle(ConditionalOracle):
    def __init__(self, target: XorTarget, device="cpu"):
        self.target = target
        self.n, self.q, self.name = target.n, 2, target.name
        self.device = torch.device(device)
        groups: dict[int, list[int]] = {}
        for c, sol in enumerate(target.solutions):
            groups.setdefault(sol.shape[0], []).append(c)
        self.groups = []
        for S, comps in sorted(groups.items()):
            g = max(len(target.components[c]) for c in comps)
            variables = torch.full((len(comps), g), self.n, dtype=torch.long)  # padding -> scratch column n
            bits = torch.zeros((len(comps), S, g), dtype=torch.float64)
            for row, c in enumerate(comps):
                comp = target.components[c]
                variables[row, :len(comp)] = torch.tensor(comp)
                bits[row, :, :len(comp)] = target.solutions[c].to(torch.float64)
            weights = 2 ** torch.arange(g, dtype=torch.long)
            masks = (bits.to(torch.long) * weights).sum(-1)  # [C, S] solutions as bit masks
            self.groups.append((variables.to(self.device), bits.to(self.device), masks.to(self.device), weights.to(self.device)))

        # Per variable: its component and its slot there; per component its variables (padded with the
        # scratch column n) and its solutions as bit masks (padded with -1: never agrees), for positional answers.
        C, g_max = len(target.components), max(len(c) for c in target.components)
        s_max = max(sol.shape[0] for sol in target.solutions)
        comp_of = torch.zeros(self.n, dtype=torch.long)
        slot_of = torch.zeros(self.n, dtype=torch.long)
        comp_vars = torch.full((C, g_max), self.n, dtype=torch.long)
        comp_masks = torch.full((C, s_max), -1, dtype=torch.long)
        for c, comp in enumerate(target.components):
            comp_of[comp] = c
            slot_of[comp] = torch.arange(len(comp))
            comp_vars[c, :len(comp)] = torch.tensor(comp)
            sol = target.solutions[c]
            comp_masks[c, :sol.shape[0]] = (sol.to(torch.long) << torch.arange(len(comp))).sum(-1)
        self.comp_of, self.slot_of = comp_of.to(self.device), slot_of.to(self.device)
        self.comp_vars, self.comp_masks = comp_vars.to(self.device), comp_masks.to(self.device)
        self.slot_weights = (2 ** torch.arange(g_max, dtype=torch.long)).to(self.device)

    def answer(self, partial: torch.Tensor) -> OracleAnswer:
        partial = partial.to(self.device)
        return OracleAnswer(*self._dense(partial))

    def _dense(self, partial: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, n = partial.shape
        padded = torch.cat([partial, partial.new_full((B, 1), -1)], 1)
        p1 = torch.full((B, n + 1), 0.5, dtype=torch.float64, device=self.device)
        feasible = torch.ones(B, dtype=torch.bool, device=self.device)
        for variables, bits, masks, weights in self.groups:
            pins = padded[:, variables]  # [B, C, g]
            pinned = ((pins >= 0).to(torch.long) * weights).sum(-1)  # [B, C]
            ones = ((pins == 1).to(torch.long) * weights).sum(-1)
            agree = ((masks.unsqueeze(0) ^ ones.unsqueeze(-1)) & pinned.unsqueeze(-1)) == 0  # [B, C, S]
            count = agree.sum(-1)  # [B, C]
            feasible &= (count > 0).all(1)
            ones_count = torch.einsum("bcs,csg->bcg", agree.to(torch.float64), bits)
            law = ones_count / count.clamp(min=1).unsqueeze(-1).to(torch.float64)
            p1.scatter_(1, variables.reshape(1, -1).expand(B, -1), law.reshape(B, -1))
        p1 = p1[:, :n]
        law = torch.stack([1 - p1, p1], -1)
        answer = placeholder_marginals(partial, 2)
        good = (partial < 0) & feasible.unsqueeze(1)
        return torch.where(good.unsqueeze(-1), law, answer), feasible

    def answer_at(self, partial: torch.Tensor, positions: torch.Tensor) -> OracleAnswer:
        """Laws at positions [B, k] only: each asked coordinate's law depends on its own component alone
        (components are independent), so the cost is O(B k S g) with S, g the component's solutions and size.

        A row whose pins are infeasible in another component still gets this component's conditional at
        the asked coordinate (finite, as with the Markov chain); feasibility (every component) is computed
        when read.  An asked coordinate whose own component is infeasible gets the placeholder.
        """
        partial, positions = partial.to(self.device), positions.to(self.device)
        B = partial.shape[0]
        padded = torch.cat([partial, partial.new_full((B, 1), -1)], 1)
        return self._at(lambda variables: padded.gather(1, variables.reshape(B, -1)).reshape(variables.shape),
                        positions, partial.gather(1, positions), lambda: self._dense(partial)[1])

    def answer_prefixes(self, rows, positions: torch.Tensor) -> OracleAnswer:
        """Prefix rows (``PrefixRows``): the asked coordinates' component variables read through the rows'
        pins (x, then the drafted slots before each length), O(R k g): never a [R, n] row."""
        positions = positions.to(self.device)
        n = self.n
        R = rows.num_rows

        def pins_of(variables: torch.Tensor) -> torch.Tensor:  # [R, k, g], n = padding (free)
            flat = variables.reshape(R, -1)
            return torch.where(flat < n, rows.pins_at(flat.clamp(max=n - 1)), -1).reshape(variables.shape)

        return self._at(pins_of, positions, rows.pins_at(positions), lambda: self._dense(rows.materialise())[1])

    def open_session(self, partial: torch.Tensor) -> "XorSession":
        return XorSession(self, partial.to(self.device))

    def _component_masks(self, pins: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pins [..., g] of a component's variables -> (which are pinned, which are pinned to 1) as bit masks."""
        pinned = ((pins >= 0).to(torch.long) * self.slot_weights).sum(-1)
        ones = ((pins == 1).to(torch.long) * self.slot_weights).sum(-1)
        return pinned, ones

    def _at(self, pins_of, positions: torch.Tensor, own: torch.Tensor, feasible) -> OracleAnswer:
        comps = self.comp_of[positions]  # [B, k]
        pinned, ones = self._component_masks(pins_of(self.comp_vars[comps]))  # [B, k] bit masks
        masks = self.comp_masks[comps]  # [B, k, S]
        one_here = ((masks >> self.slot_of[positions].unsqueeze(-1)) & 1) == 1
        return self._laws(self._agreeing(masks, pinned, ones), one_here, own, feasible)

    @staticmethod
    def _agreeing(masks: torch.Tensor, pinned: torch.Tensor, ones: torch.Tensor) -> torch.Tensor:
        """Which solutions (bit masks [..., S], -1 pads) agree with the pins (masks [...]): [..., S] bool."""
        return (((masks ^ ones.unsqueeze(-1)) & pinned.unsqueeze(-1)) == 0) & (masks >= 0)

    @staticmethod
    def _laws(agree: torch.Tensor, one_here: torch.Tensor, own: torch.Tensor, feasible) -> OracleAnswer:
        """The laws at the asked coordinates [B, k] from their components' agreeing solutions [B, k, S]: the
        share of those that put a 1 there (one_here [B, k, S]); the placeholder at pins and infeasible ones."""
        count = agree.sum(-1)  # [B, k]
        p1 = (agree & one_here).sum(-1).to(torch.float64) / count.clamp(min=1).to(torch.float64)
        law = torch.stack([1 - p1, p1], -1)
        good = (own < 0) & (count > 0)
        return OracleAnswer(torch.where(good.unsqueeze(-1), law, placeholder_marginals(own, 2)), feasible)


class XorSession(OracleSession):
    """Incremental state: per row and component, which of its solutions agree with the row's pins
    ([B, C, S] bool; components are independent, so this is the whole conditional law).  A pin keeps
    the solutions with that value at that variable (O(S) per row); a round reads the asked coordinates'
    component (O(B k S)), never the row."""

    def __init__(self, oracle: XorOracle, partial: torch.Tensor):
        super().__init__(oracle, partial)
        B = partial.shape[0]
        padded = torch.cat([partial, partial.new_full((B, 1), -1)], 1)
        C, g = oracle.comp_vars.shape
        pinned, ones = oracle._component_masks(padded[:, oracle.comp_vars.reshape(-1)].reshape(B, C, g))  # [B, C]
        masks = oracle.comp_masks  # [C, S], -1 pads
        self.agree = oracle._agreeing(masks, pinned, ones)
        # per coordinate: which solutions of its component put a 1 there ([n, S])
        self.one_at = ((masks[oracle.comp_of] >> oracle.slot_of.unsqueeze(1)) & 1) == 1
        self.rows = torch.arange(B, device=partial.device)

    def pin(self, rows, positions, values) -> None:
        super().pin(rows, positions, values)
        rows = self.rows if rows is None else rows
        comps = self.oracle.comp_of[positions]
        kept = self.agree[rows, comps] & (self.one_at[positions] == (values == 1).unsqueeze(1))
        if rows.numel() > 1 and torch.unique(rows * self.agree.shape[1] + comps).numel() < rows.numel():
            for j in range(rows.numel()):  # several pins in one component of a row: one at a time
                self.agree[rows[j], comps[j]] &= self.one_at[positions[j]] == bool(values[j] == 1)
            return
        self.agree[rows, comps] = kept

    def answer_at(self, positions: torch.Tensor) -> OracleAnswer:
        oracle, x = self.oracle, self.x
        agree = self.agree[self.rows.unsqueeze(1), oracle.comp_of[positions]]  # [B, k, S]
        agree_all = self.agree
        return oracle._laws(agree, self.one_at[positions], x.gather(1, positions),
                            self.feasible_now(lambda: agree_all.any(-1).all(-1)))


def _components(n, equations):
    parent = list(range(n))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for eq in equations:
        for v in eq[1:]:
            ra, rb = find(eq[0]), find(v)
            if ra != rb:
                parent[rb] = ra
    comps: dict[int, list[int]] = {}
    for v in range(n):
        comps.setdefault(find(v), []).append(v)
    return sorted(comps.values())


def _solve(comp, equations, rhs) -> torch.Tensor:
    """All solutions [S, g] of the equations touching ``comp`` (brute force over 2^g)."""
    g = len(comp)
    where = {v: k for k, v in enumerate(comp)}
    cells = ((torch.arange(2**g).unsqueeze(1) >> torch.arange(g)) & 1)  # [2^g, g]
    ok = torch.ones(2**g, dtype=torch.bool)
    for eq, b in zip(equations, rhs):
        if eq[0] in where:
            ok &= cells[:, [where[v] for v in eq]].sum(-1) % 2 == b
    return cells[ok]
