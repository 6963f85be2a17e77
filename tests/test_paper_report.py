"""`make paper` end to end at the smoke budget, on two artefacts: table_d5 runs (fast runs), fig7 cannot (no CLIP weights here; its stand-in reading is left out for time). The report lists every artefact and every claim with a verdict,
says why fig7's were not run, flips a claim when a fixture's numbers change, and a rerun reuses
every finished run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from equi import paper
from equi.config import REPO_ROOT

VERDICTS = ("held", "not held", "not run here", "not checkable")


def equi_paper(outputs: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "equi.paper", *args, "--budget", "smoke"], cwd=REPO_ROOT,
                          env={**env, "EQUI_OUTPUTS": str(outputs)}, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def built(tmp_path_factory, fixture_data):
    outputs = tmp_path_factory.mktemp("paper") / "outputs"
    env = {**os.environ, "EQUI_DATA": str(fixture_data), "EQUI_DOWNLOAD": "false", "WANDB_SILENT": "true"}
    env.pop("EQUI_DATA_MIRROR", None)
    out = equi_paper(outputs, env, "build", "--only", "table_d5,fig7", "--no-standins")
    assert out.returncode == 0, out.stdout + out.stderr
    return outputs, env, out.stdout


def claim_rows(report: str) -> dict[str, list[str]]:
    """claim id → its rows of the report's "Every claim" table (reading, verdict, detail)."""
    table = report.split("## Every claim", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in table.splitlines()[4:]:
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        rows.setdefault(cells[0], []).append(cells[2:])
    return rows


def rewrite(outputs: Path, task: str, change) -> None:
    """Apply `change(record)` to every finished run of `task` (a fixture's numbers)."""
    for path in (outputs / "runs").glob(f"{task}-*/results.json"):
        record = json.loads(path.read_text())
        change(record)
        path.write_text(json.dumps(record))


def report_of(outputs: Path, env: dict) -> str:
    out = equi_paper(outputs, env, "report")
    assert out.returncode == 0, out.stdout + out.stderr
    return (outputs / "paper" / "report.md").read_text()


def test_one_progress_line_per_artefact_and_missing_weights_are_not_run_here_with_the_reason(built):
    outputs, _, stdout = built
    lines = [line for line in stdout.splitlines() if re.match(r"\[\d/2\] ", line)]
    assert [line.split(":")[0] for line in lines] == ["[1/2] table_d5", "[2/2] fig7"]
    assert "table_d5: 6 runs (0 found) … 6/6 finished" in lines[0]
    assert re.search(r"fig7: \d+ runs \(0 found\) … not run: .*RN50.*not found", lines[1]), lines[1]
    report = (outputs / "paper" / "report.md").read_text()
    for claim in paper.artefact("fig7").claims:
        reading, verdict, detail = claim_rows(report)[claim.id][0]
        assert (reading, verdict) == ("paper", "not run here") and "RN50" in detail and "not found" in detail


def test_every_artefact_and_every_claim_appears_with_a_verdict(built):
    outputs, _, _ = built
    report = (outputs / "paper" / "report.md").read_text()
    rows = claim_rows(report)
    for artefact in paper.artefacts().values():
        assert f"\n## {artefact.name}: " in report
        for claim in artefact.claims:
            assert rows[claim.id][0][0] == "paper" and rows[claim.id][0][1].split(" (")[0] in VERDICTS, claim.id
    assert "no finished runs of it at budget smoke" in rows["table2.order"][0][2]
    assert re.search(r"\*\*\d+ claims held, \d+ not held, \d+ not run here, 1 not checkable by numbers\*\*", report)
    page = (outputs / "paper" / "index.html").read_text()
    images = re.findall(r'<img alt="[^"]*" src="([^"]+)"', page)
    assert "figures/table_d5.png" in images and all((outputs / "paper" / i).exists() for i in images)


def test_a_claim_flips_when_its_numbers_change_and_a_rerun_reuses_every_run(built):
    outputs, env, _ = built
    loss = {"MLP": 1.0, "Canon-MLP": 0.5}
    rewrite(outputs, "synthetic", lambda r: r["metrics"].update(test_loss=loss.get(r["label"], 0.2)))
    rows = claim_rows(report_of(outputs, env))
    assert rows["table_d5.canon_helps"][0][1] == "held" and rows["table_d5.near_mlp"][0][1] == "held"
    loss = {"MLP": 2.0, "Canon-MLP": 2.5}
    rewrite(outputs, "synthetic", lambda r: r["metrics"].update(test_loss=loss.get(r["label"], 0.2)))
    rows = claim_rows(report_of(outputs, env))
    reading, verdict, detail = rows["table_d5.canon_helps"][0]
    assert verdict == "not held (short by 0.5)" and detail == "MLP 2.0 vs Canon-MLP 2.5"
    assert rows["table_d5.near_mlp"][0][1] == "not held (short by 0.69)"

    again = equi_paper(outputs, env, "build", "--only", "table_d5")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "table_d5: 6 runs (6 found) … 6/6 finished" in again.stdout
    assert len(list((outputs / "runs").glob("*/results.json"))) == 6
