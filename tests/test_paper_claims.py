"""The paper's claims as data (equi/paper/basu2023.yaml, equi.paper.claims): every claim parses and
reads cells its artefact can measure, and each check gives held / not held (by how much) / not run."""

from __future__ import annotations

import re

import pytest

from equi import paper
from equi.paper import build
from equi.paper.claims import HELD, NOT_CHECKABLE, NOT_HELD, NOT_RUN, Claim, bootstrap, evaluate, instances, parse


def claim(check, **extra) -> Claim:
    return parse({"id": "x.y", "says": "…", "section": "§0", "check": check, **extra}, "x")


def test_every_artefact_has_a_target_and_every_claim_expands():
    artefacts = paper.artefacts()
    assert len(artefacts) == 19 and sum(len(a.claims) for a in artefacts.values()) == 44
    for artefact in artefacts.values():
        assert artefact.targets, artefact.name
        assert artefact.claims, f"{artefact.name} has no claim (a claim with check none says why)"
        for c in artefact.claims:
            if c.check is None:
                continue
            for _, cells in instances(c.check):
                assert not any(re.search(r"\{\w+\}", cell) for cell in cells), (c.id, cells)  # every {x} has a `for`


def test_every_budget_names_known_artefacts_and_the_rehearsal_the_six_real_clip_ones():
    assert set(build.budgets()) == {"smoke", "cpu", "full", "rehearsal"}
    assert set(build.budget("rehearsal").artefacts()) == {"fig4", "fig5a", "fig7", "fig8", "fig11a", "fig12"}
    with pytest.raises(ValueError, match="unknown budget 'smok'; choose one of: smoke, cpu, full, rehearsal"):
        build.budget("smok")


def test_order_holds_fails_by_its_shortfall_and_is_not_run_without_its_cells():
    check = {"order": ["{env}/a", "{env}/b"], "for": {"env": ["e1", "e2"]}}
    cells = {"e1/a": [3.0, 5.0], "e1/b": [1.0, 1.0], "e2/a": [2.0], "e2/b": [1.0]}
    assert evaluate(claim(check), cells).status == HELD
    cells["e2/a"] = [0.5]
    verdict = evaluate(claim(check), cells)
    assert (verdict.status, verdict.shortfall) == (NOT_HELD, 0.5) and "e2: e2/a 0.5 vs e2/b 1.0" in verdict.detail
    assert evaluate(claim({**check, "margin": 2}), {"e1/a": [4.0], "e1/b": [1.0]}).status == HELD
    assert evaluate(claim({**check, "margin": 2}), {"e1/a": [2.5], "e1/b": [1.0]}).shortfall == 0.5
    assert evaluate(claim({**check, "strict": True}), {"e1/a": [1.0], "e1/b": [1.0]}).status == NOT_HELD
    missing = evaluate(claim(check), {})
    assert missing.status == NOT_RUN and "e1/a" in missing.detail
    partly = evaluate(claim(check), {"e1/a": [2.0], "e1/b": [1.0]})
    assert partly.status == HELD and partly.instances == 1 and partly.missing == ["e2/a", "e2/b"]


def test_an_order_within_the_seeds_noise_says_so():
    check = {"order": ["a", "b"]}
    assert evaluate(claim(check), {"a": [1.0, 3.0], "b": [0.0, 2.5]}).noisy  # held, intervals overlap
    assert not evaluate(claim(check), {"a": [5.0, 6.0], "b": [0.0, 1.0]}).noisy
    missed = evaluate(claim(check), {"a": [0.0, 2.5], "b": [1.0, 3.0]})
    assert missed.status == NOT_HELD and missed.noisy  # missed within noise
    assert not evaluate(claim(check), {"a": [0.0, 1.0], "b": [5.0, 6.0]}).noisy


def test_near_paper_reads_the_papers_number_with_its_read_off_margin():
    c = claim({"near_paper": ["RN50/none"], "within": 2})
    number = paper.parse_number({"read_off": 41.8, "pm": 0.5}, "t")
    assert evaluate(c, {"RN50/none": [44.0]}, lambda cell: number).status == HELD  # 2.2 off, within 2 + 0.5
    verdict = evaluate(c, {"RN50/none": [45.0]}, lambda cell: number)
    assert verdict.status == NOT_HELD and verdict.shortfall == pytest.approx(0.7)
    span = paper.parse_number({"range": [0.11, 0.37]}, "t")
    assert evaluate(c, {"RN50/none": [0.2]}, lambda cell: span).status == HELD
    assert evaluate(c, {"RN50/none": [1.0]}, lambda cell: None).status == NOT_RUN  # no paper number there


def test_at_most_and_at_least_and_a_claim_that_cannot_be_checked():
    assert evaluate(claim({"at_most": ["t"], "value": 0.05}), {"t": [0.01, 0.03]}).status == HELD
    assert evaluate(claim({"at_least": ["t"], "value": 0.3}), {"t": [0.2]}).shortfall == pytest.approx(0.1)
    assert evaluate(claim("none", why="illustrations"), {}).status == NOT_CHECKABLE


def test_a_malformed_claim_is_one_line_naming_it():
    with pytest.raises(ValueError, match=r"artefacts.x.claims\[x.y\]: check must be one of order"):
        claim({"orderr": ["a", "b"]})
    with pytest.raises(ValueError, match="near_paper needs within"):
        claim({"near_paper": ["a"]})
    with pytest.raises(ValueError, match="check none needs a `why`"):
        claim("none")


def test_the_bootstrap_interval_holds_the_mean_and_is_empty_for_one_seed():
    assert bootstrap([2.0]) == (2.0, 2.0)
    low, high = bootstrap([1.0, 2.0, 3.0, 4.0, 5.0])
    assert 1.0 <= low < 3.0 < high <= 5.0
    assert bootstrap([1.0, 2.0, 3.0, 4.0, 5.0]) == (low, high)  # seeded: the same every time


def test_a_misspelled_budget_or_artefact_is_one_line_and_exit_2(capsys):
    from equi.paper.__main__ import main

    assert main(["build", "--budget", "smok"]) == 2
    assert capsys.readouterr().err == "error: unknown budget 'smok'; choose one of: smoke, cpu, full, rehearsal\n"
    assert main(["build", "--only", "fig99"]) == 2
    assert capsys.readouterr().err.startswith("error: basu2023.yaml has no artefact 'fig99'; it has: table_d5, ")
