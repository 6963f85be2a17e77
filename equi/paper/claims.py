"""The paper's claims as checks on measured cells, and their verdicts: held, not held (by how much),
or not run (a cell it needs was not measured).

A claim (basu2023.yaml, an artefact's `claims:`) reads cells: paths such as "cartpole/equizero" of
the values (one per seed) its artefact's runs measured (equi.paper.measure). Its `check` is one of

    {order: [A, B, …]}                 mean(A) ≥ mean(B) ≥ …   (strict: true for >, margin: x for A ≥ B + x)
    {near_paper: [A, …], within: x}    |mean(A) − the paper's number at A| ≤ x (+ a read-off's ± pm)
    {at_most: [A, …], value: x}        mean(A) ≤ x     ({at_least: …} for ≥)
    none                               not checkable by numbers (its `why` says so)

with `for: {name: [values]}` expanding "{name}" in the cells (one instance per combination).
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass, field

import numpy as np

from equi.stats import bootstrap_mean

CHECKS = ("order", "near_paper", "at_most", "at_least")
OPTIONS = {"order": {"strict", "margin"}, "near_paper": {"within"}, "at_most": {"value"}, "at_least": {"value"}}
HELD, NOT_HELD, NOT_RUN, NOT_CHECKABLE = "held", "not held", "not run here", "not checkable"
RESAMPLES = 10_000  # of the bootstrap over seeds


@dataclass(frozen=True)
class Claim:
    id: str
    says: str
    section: str
    paper: str  # the paper's own words, transcribed
    check: dict | None  # None: not checkable by numbers
    why: str | None = None  # why not checkable, or a diagnosis where it does not hold
    diagnosis: str | None = None

    @property
    def kind(self) -> str | None:
        return next((k for k in CHECKS if self.check and k in self.check), None)


@dataclass
class Verdict:
    status: str
    detail: str
    shortfall: float | None = None  # not held: by how much the worst instance misses
    missing: list[str] = field(default_factory=list)  # cells not measured
    instances: int = 0  # instances checked
    noisy: bool = False  # held (or missed) on the means, but the 95% intervals of the cells it orders overlap


def parse(raw: dict, artefact: str) -> Claim:
    """One claim of the yaml, checked (a wrong key or an unknown check is an error naming the claim)."""
    where = f"artefacts.{artefact}.claims[{raw.get('id', '?')}]"
    known = {"id", "says", "section", "paper", "check", "why", "diagnosis"}
    if not isinstance(raw, dict) or set(raw) - known or not {"id", "says", "section", "check"} <= set(raw):
        raise ValueError(f"{where}: a claim has id, says, section, paper, check (and why, diagnosis); got {raw!r}")
    check = raw["check"]
    if check in (None, "none"):
        if not raw.get("why"):
            raise ValueError(f"{where}: check none needs a `why`")
        return Claim(raw["id"], raw["says"], raw["section"], raw.get("paper", ""), None, raw["why"], raw.get("diagnosis"))
    kinds = [k for k in CHECKS if k in check]
    extra = set(check) - set(kinds) - {"for"} - (OPTIONS[kinds[0]] if len(kinds) == 1 else set())
    if len(kinds) != 1 or extra:
        raise ValueError(f"{where}: check must be one of {', '.join(CHECKS)} with its options; got {check!r}")
    if kinds[0] in ("at_most", "at_least") and "value" not in check or kinds[0] == "near_paper" and "within" not in check:
        raise ValueError(f"{where}: {kinds[0]} needs {'within' if kinds[0] == 'near_paper' else 'value'}")
    return Claim(raw["id"], raw["says"], raw["section"], raw.get("paper", ""), dict(check), raw.get("why"),
                 raw.get("diagnosis"))


def instances(check: dict) -> list[tuple[str, list[str]]]:
    """(the instance's name, its cells) for each combination of `for` (one, unnamed, without it)."""
    cells = check[next(k for k in CHECKS if k in check)]
    names = list((check.get("for") or {}).items())
    if not names:
        return [("", list(cells))]
    out = []
    for values in itertools.product(*(v for _, v in names)):
        subs = {n: str(v) for (n, _), v in zip(names, values)}
        out.append((", ".join(subs.values()), [c.format(**subs) for c in cells]))
    return out


def mean(values: list[float]) -> float:
    return statistics.fmean(values)


def bootstrap(values: list[float]) -> tuple[float, float]:
    """The 95% percentile-bootstrap interval of the mean over seeds (10,000 resamples, seeded; one
    value: that value, no interval)."""
    _, low, high = bootstrap_mean(np.asarray(values, dtype=float), RESAMPLES, np.random.default_rng(0))
    return low, high


def overlap(a: list[float], b: list[float]) -> bool:
    (lo_a, hi_a), (lo_b, hi_b) = bootstrap(a), bootstrap(b)
    return len(a) > 1 and len(b) > 1 and lo_a <= hi_b and lo_b <= hi_a


def fmt(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1 else f"{x:.1f}"


def evaluate(claim: Claim, cells: dict[str, list[float]], paper_number=None) -> Verdict:
    """The claim's verdict on `cells`; `paper_number(cell)` gives the paper's Number at a cell (near_paper)."""
    if claim.check is None:
        return Verdict(NOT_CHECKABLE, claim.why or "")
    kind, missing, failures, notes, noisy, checked = claim.kind, [], [], [], False, 0
    failing_overlap = []  # whether each failing pair's intervals overlap (a miss within noise)
    for name, names in instances(claim.check):
        absent = [c for c in names if not cells.get(c)]
        if absent:
            missing += absent
            continue
        checked += 1  # (near_paper takes it back where the paper has no number)
        means = [mean(cells[c]) for c in names]
        prefix = f"{name}: " if name else ""
        if kind == "order":
            margin, strict = float(claim.check.get("margin", 0)), bool(claim.check.get("strict"))
            for (a, ma), (b, mb) in zip(zip(names, means), zip(names[1:], means[1:])):
                ok = ma > mb + margin if strict else ma >= mb + margin
                if not ok:
                    failures.append((mb + margin - ma, f"{prefix}{a} {fmt(ma)} vs {b} {fmt(mb)}"
                                     + (f" (+{fmt(margin)} wanted)" if margin else "")))
                    failing_overlap.append(overlap(cells[a], cells[b]))
                elif overlap(cells[a], cells[b]):
                    noisy = True
            if not failures:
                notes.append(prefix + " ≥ ".join(fmt(m) for m in means))
        elif kind == "near_paper":
            numbers = [paper_number(c) if paper_number else None for c in names]
            if all(n is None or n.value is None and n.low is None for n in numbers):
                checked -= 1
            for c, m, number in zip(names, means, numbers):
                if number is None or number.value is None and number.low is None:
                    missing.append(f"{c} (no paper number)")
                    continue
                tolerance = float(claim.check["within"]) + (number.pm or 0)
                low, high = (number.low, number.high) if number.value is None else (number.value, number.value)
                off = max(low - m, m - high, 0.0)
                (failures.append((off - tolerance, f"{prefix}{c} {fmt(m)} vs the paper's {number}"))
                 if off > tolerance else notes.append(f"{prefix}{c} {fmt(m)} vs {number}"))
        else:
            bound = float(claim.check["value"])
            for c, m in zip(names, means):
                ok = m <= bound if kind == "at_most" else m >= bound
                (notes if ok else failures).append(
                    (0, f"{prefix}{c} {fmt(m)}") if ok else (abs(m - bound), f"{prefix}{c} {fmt(m)} vs {fmt(bound)}"))
    if failures:
        worst = max(failures)
        noisy = bool(failing_overlap) and len(failing_overlap) == len(failures) and all(failing_overlap)
        return Verdict(NOT_HELD, "; ".join(text for _, text in failures), worst[0], missing, checked, noisy)
    if not checked:
        return Verdict(NOT_RUN, "not measured: " + ", ".join(dict.fromkeys(missing)), None, missing, 0)
    detail = "; ".join(n if isinstance(n, str) else n[1] for n in notes)
    return Verdict(HELD, detail, None, missing, checked, noisy)
