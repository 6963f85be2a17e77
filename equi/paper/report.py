"""The paper in one report: every artefact's cells beside the paper's numbers, and every claim's verdict.

    python -m equi.paper report --budget cpu [--runs outputs/runs] [--out outputs/paper]

Built from run dirs alone (and status.json of `make paper`, when there is one, for why something
did not run): copy a cluster's outputs/runs back and build it here. Writes report.md and a static
index.html with its figures, openable offline.
"""

from __future__ import annotations

import html
import json
import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from equi import paper  # noqa: E402
from equi.paper import claims as claims_mod  # noqa: E402
from equi.paper import measure  # noqa: E402
from equi.paper.build import Budget, index, outputs_root, planned, readings  # noqa: E402
from equi.report import stats  # noqa: E402
from equi.results import git_commit, package_versions, write_text_atomic  # noqa: E402

ORDER = (claims_mod.HELD, claims_mod.NOT_HELD, claims_mod.NOT_RUN, claims_mod.NOT_CHECKABLE)
# A stand-in is not the paper's model: its numbers are read for the paper's orderings, not compared with the paper's.
STANDIN_NUMBERS = claims_mod.Verdict(claims_mod.NOT_CHECKABLE, "a stand-in's numbers are not the paper's model's")


@dataclass
class Reading:
    """One reading of an artefact: its runs (the paper's setting, or a stand-in), cells and verdicts."""

    label: str
    records: list
    planned: int
    cells: dict
    stand_ins: list
    verdicts: dict  # claim id → Verdict


def paper_number_at(artefact: paper.Artefact, cell: str):
    try:
        return paper.find(artefact.name, *cell.split("/"))
    except paper.PaperKeyError:
        return None


def substituted(claim: claims_mod.Claim, values: dict | None) -> claims_mod.Claim:
    """The claim with the stand-in's values in its `for` (e.g. model: [standin])."""
    if not values or claim.check is None or "for" not in claim.check:
        return claim
    loops = {k: values.get(k, v) for k, v in claim.check["for"].items()}
    return claims_mod.Claim(claim.id, claim.says, claim.section, claim.paper, {**claim.check, "for": loops}, claim.why,
                            claim.diagnosis)


def read(artefact: paper.Artefact, b: Budget, runs_dir: Path, status: dict) -> list[Reading]:
    found = index(runs_dir)
    cache = outputs_root() / "paper" / b.name / "plan-cache.json"
    out = []
    for reading in readings(artefact):
        keys = [r["run_key"] for t in reading["targets"] for r in planned(t, b.variables(artefact.name), cache)]
        records = [json.loads(found[k].read_text()) for k in dict.fromkeys(keys) if k in found]
        cells = measure.cells(artefact, records, runs_dir.parent) if records or artefact.reads else {}
        verdicts = {c.id: claims_mod.evaluate(substituted(c, reading["for"]), cells,
                                              lambda cell: paper_number_at(artefact, cell))
                    if reading["label"] == "paper" or c.kind != "near_paper" else STANDIN_NUMBERS
                    for c in artefact.claims}
        why = status.get("not_run") if reading["label"] == "paper" else None
        for v in verdicts.values():
            if v.status == claims_mod.NOT_RUN:
                v.detail = (f"{why}" if why else
                            f"no finished runs of it at budget {b.name} under {runs_dir}" if not records else v.detail)
        out.append(Reading(reading["label"], records, len(set(keys)), cells, measure.stand_ins(artefact, records), verdicts))
    return out


def paper_first(artefact: paper.Artefact, cells) -> list[str]:
    """The cells in name order, those the paper has (a number, or one not transcribed) before ours."""
    def ours(cell: str) -> bool:
        number = paper_number_at(artefact, cell)
        return number is None or number.kind == "absent"
    return sorted(cells, key=lambda cell: (ours(cell), cell))


def cell_rows(artefact: paper.Artefact, cells: dict) -> list[list[str]]:
    rows = []
    for cell in paper_first(artefact, cells):
        values = cells[cell]
        (mean, std), (low, high) = stats(values), claims_mod.bootstrap(values)
        number = paper_number_at(artefact, cell)
        rows.append([cell, str(len(values)), claims_mod.fmt(mean), claims_mod.fmt(std),
                     f"[{claims_mod.fmt(low)}, {claims_mod.fmt(high)}]" if len(values) > 1 else "one seed",
                     str(number) if number is not None else "-"])
    return rows


def figure(artefact: paper.Artefact, reading: Reading, path: Path) -> bool:
    """Ours (mean, 95% bootstrap interval over seeds) beside the paper's number, one line per cell."""
    if not reading.cells:
        return False
    names = paper_first(artefact, reading.cells)
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(names) + 1.2))
    for y, cell in enumerate(names):
        values = reading.cells[cell]
        mean, (low, high) = claims_mod.mean(values), claims_mod.bootstrap(values)
        ax.errorbar(mean, y, xerr=[[mean - low], [high - mean]], fmt="o", color="#4c72b0", capsize=3,
                    label="ours (95% CI)" if y == 0 else None)
        number = paper_number_at(artefact, cell)
        if number is not None and number.value is not None:
            ax.plot(number.value, y, marker="x", color="#dd8452", ms=8, ls="none",
                    label="paper" if not ax.get_legend_handles_labels()[1].count("paper") else None)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(artefact.metric, fontsize=8)
    ax.set_title(f"{artefact.name} ({reading.label}): {artefact.source}", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def diagnosis(claim: claims_mod.Claim, b: Budget) -> str:
    """Why a claim may not hold here: the budget's reason first (fast or random-weight runs are not
    meant to hold the paper's numbers), then the claim's own, with what was measured."""
    reasons = []
    if b.plumbing:
        reasons.append("budget: random weights, plumbing only; no claim about CLIP is expected to hold")
    elif b.fast:
        reasons.append("budget: fast smoke runs (tiny models, a few examples, one or two seeds) are not meant to "
                       "reach the paper's numbers")
    reasons.append(claim.diagnosis or "none recorded yet: a difference from the paper not yet explained")
    return "; ".join(reasons)


def counted(verdicts: list) -> dict[str, int]:
    return {s: sum(v.status == s for v in verdicts) for s in ORDER}


def verdict_text(v: claims_mod.Verdict, plumbing: bool) -> str:
    text = v.status
    if v.status == claims_mod.NOT_HELD and v.shortfall is not None:
        text += f" (short by {claims_mod.fmt(v.shortfall)})" if v.shortfall > 0 else " (a tie where > was claimed)"
    if v.status == claims_mod.HELD and v.missing:
        text += f" (on {v.instances} of its instances; not measured: {', '.join(dict.fromkeys(v.missing))})"
    if v.noisy:
        text += " (within noise: the 95% intervals overlap)"
    return text + (" — plumbing only (random weights)" if plumbing and v.status in (claims_mod.HELD, claims_mod.NOT_HELD) else "")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
        cpu = model
    except (OSError, StopIteration):
        pass
    gpu = "none"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    except ImportError:
        pass
    return f"{cpu} ({os.cpu_count()} cores); GPU: {gpu}; {platform.platform()}"


def table_md(header: list[str], rows: list[list[str]]) -> list[str]:
    clean = [[c.replace("|", "\\|").replace("\n", " ") for c in r] for r in rows]
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in clean]


def write(b: Budget, runs_dir: Path, out: Path | None = None) -> int:
    """Write report.md and index.html for budget `b` from the runs under runs_dir; 0 when written."""
    out = out or outputs_root() / "paper"
    status_file = outputs_root() / "paper" / b.name / "status.json"
    status = json.loads(status_file.read_text()) if status_file.exists() else {}
    figures = out / "figures"
    shutil.rmtree(figures, ignore_errors=True)
    glance, every, blocks = [], [], []
    for name in b.artefacts():
        artefact = paper.artefact(name)
        got = read(artefact, b, runs_dir, status.get(name, {}))
        blocks.append((artefact, got))
        for c in artefact.claims:
            for reading in got:
                v = reading.verdicts[c.id]
                if reading.label != "paper" and v.status in (claims_mod.NOT_RUN, claims_mod.NOT_CHECKABLE):
                    continue
                if reading.label == "paper":
                    every.append(v)
                glance.append([c.id, c.says, reading.label, verdict_text(v, b.plumbing), v.detail])
    counts = counted(every)
    standin_counts = counted([v for _, got in blocks for r in got[1:] for v in r.verdicts.values()])
    standin = standin_counts[claims_mod.HELD] + standin_counts[claims_mod.NOT_HELD]
    variables = " ".join(f"{k}={v}" for k, v in b.vars.items()) or "the targets' defaults"
    lines = ["# Reproduction report: Basu et al., Efficient Equivariant Transfer Learning from Pretrained Models "
             "(NeurIPS 2023)",
             "", f"**Budget `{b.name}`**: {b.says}.", "",
             f"**{counts[claims_mod.HELD]} claims held, {counts[claims_mod.NOT_HELD]} not held, "
             f"{counts[claims_mod.NOT_RUN]} not run here, {counts[claims_mod.NOT_CHECKABLE]} not checkable by numbers** "
             f"(the paper's setting, {len(every)} claims over {len(blocks)} artefacts)"
             + (f"; on the offline stand-ins: {standin_counts[claims_mod.HELD]} held, {standin_counts[claims_mod.NOT_HELD]} "
                f"not held" if standin else "") + "."
             + (" **Plumbing only: every run read random weights.**" if b.plumbing else ""), "",
             f"- the budget's Makefile variables: {variables}",
             f"- built {time.strftime('%Y-%m-%d %H:%M:%S')} from {runs_dir}; code: {git_commit() or 'unknown'}",
             f"- this machine: {machine()}",
             "- packages: " + ", ".join(f"{k} {v}" for k, v in package_versions().items())]
    run_commits = sorted({r.get("git_commit") or "unknown" for _, got in blocks for rd in got for r in rd.records})
    run_devices = sorted({r["config"]["hardware"]["device"] for _, got in blocks for rd in got for r in rd.records})
    if status:
        lines.append("- wall time per artefact (its last `make paper` here): "
                     + ", ".join(f"{n} {status[n]['wall_s']:.0f} s" for n in b.artefacts() if n in status))
    if run_commits:
        lines.append(f"- the runs were made at commit(s) {', '.join(run_commits)}, on device(s) {', '.join(run_devices)}")
    lines += ["", "## Every claim", ""] + table_md(["claim", "says", "reading", "verdict", "detail"], glance)
    for artefact, got in blocks:
        s = status.get(artefact.name, {})
        lines += ["", f"## {artefact.name}: {artefact.source}", "", f"Metric: {artefact.metric}. "
                  f"Made by `make {' '.join(artefact.targets)}`"
                  + (f" with {' '.join(f'{k}={v}' for k, v in b.per[artefact.name].items())}" if artefact.name in b.per else "")
                  + " and the budget's variables."]
        if s:
            lines.append(f"Last `make paper` here: {s['finished']}/{s['runs']} runs finished, {s['wall_s']:.0f} s wall"
                         + (f"; not run: {s['not_run']}" if s.get("not_run") else "")
                         + (f"; failures: {'; '.join(s['failures'])}" if s.get("failures") else "") + ".")
        if artefact.note:
            lines += ["", f"Note: {artefact.note}"]
        for reading in got:
            if reading.label != "paper" and not reading.records:
                continue  # a stand-in reading that was not run here: nothing to show
            run_wall = sum(r.get("wall_time_s") or 0 for r in reading.records)
            found = (f"Read from {artefact.reads} under {runs_dir.parent}" if artefact.reads else
                     f"{len(reading.records)} of {reading.planned} planned runs found"
                     + (f" ({run_wall / 60:.1f} min of run time)" if reading.records else ""))
            lines += ["", f"### {'The paper' + chr(39) + 's setting' if reading.label == 'paper' else 'S' + reading.label[1:]}",
                      "", found + "."]
            if reading.stand_ins:
                lines.append("**Stand-ins:** " + "; ".join(reading.stand_ins) + ".")
            if b.plumbing and reading.records:
                lines.append("**Plumbing only (random weights): these numbers say the path runs, not what CLIP does.**")
            if reading.cells:
                lines += [""] + table_md(["cell", "seeds", "ours: mean", "std", "95% bootstrap CI", "paper"],
                                         cell_rows(artefact, reading.cells))
                png = figures / f"{artefact.name}{'' if reading.label == 'paper' else '_standin' + str(got.index(reading))}.png"
                if figure(artefact, reading, png):
                    lines += ["", f"![{artefact.name}: ours beside the paper's](figures/{png.name})"]
            for c in artefact.claims:
                v = reading.verdicts[c.id]
                if reading.label != "paper" and v.status in (claims_mod.NOT_RUN, claims_mod.NOT_CHECKABLE):
                    continue
                lines += ["", f"- **{c.id}** ({c.section}): {c.says} — **{verdict_text(v, b.plumbing)}**. {v.detail}"]
                if c.paper:
                    lines.append(f"  - the paper: “{c.paper}”")
                if v.status == claims_mod.NOT_HELD:
                    lines.append(f"  - diagnosis: {diagnosis(c, b)}")
        own = runs_dir.parent / "figures" / f"{artefact.name}.png"
        if own.exists() and not b.fast:
            figures.mkdir(parents=True, exist_ok=True)
            shutil.copy(own, figures / own.name)
            lines += ["", f"The target's own figure (from whichever runs it found): ![{own.name}](figures/{own.name})"]
    if paper.disagreements():
        lines += ["", "## Where the paper's code and text disagree", ""] + table_md(
            ["what", "the paper's code", "the paper's text", "our rows"],
            [[d["what"], d["code"], d["text"], d["ours"]] for d in paper.disagreements()])
    text = "\n".join(lines) + "\n"
    write_text_atomic(out / "report.md", text)
    write_text_atomic(out / "index.html", to_html(text, f"Reproduction report ({b.name})"))
    print(f"report: {out / 'report.md'} and {out / 'index.html'}: {counts[claims_mod.HELD]} held, "
          f"{counts[claims_mod.NOT_HELD]} not held, {counts[claims_mod.NOT_RUN]} not run here, "
          f"{counts[claims_mod.NOT_CHECKABLE]} not checkable")
    return 0


def inline(text: str) -> str:
    """The markdown this report writes inside a line (bold, code, images) as HTML."""
    import re

    text = html.escape(text, quote=False)
    text = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", r'<img alt="\1" src="\2">', text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def to_html(markdown: str, title: str) -> str:
    """report.md as one static page (the few forms it uses: headings, tables, lists, images, paragraphs)."""
    out, table, items = [], [], []

    def flush():
        if table:
            head, *body = [[inline(c.strip()) for c in row.strip("|").split(" | ")] for row in table if "---|" not in row]
            out.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in body) + "</table>")
            table.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>")
            items.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        if line.startswith("- ") or line.startswith("  - "):
            if table:
                flush()
            items.append(("&nbsp;&nbsp;↳ " if line.startswith("  ") else "") + inline(line.lstrip()[2:]))
            continue
        flush()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{inline(line[level:].strip())}</h{level}>")
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
    flush()
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;font-size:14px}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top}"
             "img{max-width:100%}code{background:#f4f4f4}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n")
