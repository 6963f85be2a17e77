"""The paper's numbers as data: basu2023.yaml (Basu et al., NeurIPS 2023), read once.

    from equi import paper
    paper.paper_number("table2", "EquiLSTM", "add_jump")         # 7.1, printed in Table 2
    paper.paper_number("fig5a", "RN50", "lambda", 4000).pm       # 0.5: read off Figure 5a's plot
    paper.find("table1", "RN101", "time")                        # None: no such row

Every table and figure that prints a paper number beside ours reads it here; the yaml's header
says what a number can be (printed, "mean (std)", a range, read off a plot ± pm, absent,
not transcribed).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import yaml

from equi.paper.claims import Claim, parse as parse_claim

FILE = Path(__file__).with_name("basu2023.yaml")
WORDS = {"absent": "not in the paper", "not_transcribed": "not transcribed"}  # the two words a number may be
SHAPES = ({"mean", "std"}, {"range"}, {"read_off", "pm"})  # the keys of a number written as a mapping
KEYS = {"source", "metric", "layout", "rows", "runs", "note", "claims", "target", "task", "standin", "reads"}  # of an artefact


class PaperKeyError(LookupError):
    """An artefact, row or column that basu2023.yaml does not have, or a lookup that stops short of a number."""

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True)
class Number:
    """One number of the paper; str() is how our tables print it beside ours."""

    kind: str  # printed | range | read_off | absent | not_transcribed
    text: str
    value: float | None = None  # the number (the mean of "mean (std)"); None for a range, absent, not transcribed
    std: float | None = None  # of "mean (std)"
    pm: float | None = None  # read_off: how closely (None: not recorded)
    low: float | None = None  # range: its ends (each the mean where an end is "mean (std)")
    high: float | None = None

    def __str__(self) -> str:
        return self.text

    @property
    def known(self) -> bool:
        """Whether the paper gives this number and it is here (printed, a range or read off a plot)."""
        return self.kind not in WORDS


@dataclass(frozen=True)
class Artefact:
    """A table or figure of the paper: where it stands, and its rows (row → Number, or → {column → …})."""

    name: str
    source: str
    metric: str
    layout: str
    rows: dict
    runs: dict | None = None  # the runs an equi.report table compares with: task, where, column
    note: str | None = None
    claims: tuple[Claim, ...] = ()
    targets: tuple[str, ...] = ()  # the Makefile targets that make its runs (make paper runs them)
    task: str | None = None  # whose figures module measures its cells (equi.paper.measure)
    standin: dict | None = None  # a second reading of its claims on offline stand-ins: target, says, for
    reads: str | None = None  # a file its target writes under paths.outputs, not runs (Table 1's benchmark)


def parse_number(raw, where: str) -> Number:
    """A number of the yaml (its header lists the forms); `where` names it in the error."""
    if isinstance(raw, str) and raw in WORDS:
        return Number(raw, WORDS[raw])
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return Number("printed", str(raw), float(raw))
    if isinstance(raw, dict) and set(raw) == {"mean", "std"}:
        mean, std = (parse_number(raw[k], f"{where}.{k}") for k in ("mean", "std"))
        return Number("printed", f"{mean.text} ({std.text})", mean.value, std.value)
    if isinstance(raw, dict) and set(raw) == {"range"} and isinstance(raw["range"], list) and len(raw["range"]) == 2:
        low, high = (parse_number(r, f"{where}.range") for r in raw["range"])
        return Number("range", f"{low.text} to {high.text}", low=low.value, high=high.value)
    if isinstance(raw, dict) and set(raw) == {"read_off", "pm"}:
        value = parse_number(raw["read_off"], f"{where}.read_off")
        pm = None if raw["pm"] is None else parse_number(raw["pm"], f"{where}.pm").value
        text = f"{value.text} ± {raw['pm']}" if pm is not None else f"about {value.text}"
        return Number("read_off", text, value.value, pm=pm)
    raise ValueError(f"{FILE.name}: {where} is not a number of the forms its header lists: {raw!r}")


def parse_rows(raw, where: str):
    """A row (or column) of the yaml: a Number, or {key (as text) → what is under it}."""
    if isinstance(raw, dict) and set(raw) not in SHAPES:
        if not raw:
            raise ValueError(f"{FILE.name}: {where} is empty")
        return {str(k): parse_rows(v, f"{where}.{k}") for k, v in raw.items()}
    return parse_number(raw, where)


@functools.cache
def artefacts() -> dict[str, Artefact]:
    """Every artefact of basu2023.yaml, checked whole on the first call."""
    raw = yaml.safe_load(FILE.read_text(encoding="utf-8"))["artefacts"]
    out = {}
    for name, spec in raw.items():
        where = f"artefacts.{name}"
        rows = parse_rows(spec["rows"], f"{where}.rows")
        if not isinstance(rows, dict):
            raise ValueError(f"{FILE.name}: {where}.rows must map rows to numbers")
        if spec.get("runs") is not None and "task" not in spec["runs"]:
            raise ValueError(f"{FILE.name}: {where}.runs must name the task of its runs")
        unknown = set(spec) - KEYS
        if unknown:
            raise ValueError(f"{FILE.name}: {where} has unknown key(s) {', '.join(sorted(unknown))}; "
                             f"an artefact has: {', '.join(sorted(KEYS))}")
        claims = tuple(parse_claim(c, name) for c in spec.get("claims") or ())
        targets = spec.get("target") or ()
        out[name] = Artefact(name, spec["source"], spec["metric"], spec["layout"], rows, spec.get("runs"),
                             spec.get("note"), claims, (targets,) if isinstance(targets, str) else tuple(targets),
                             spec.get("task"), spec.get("standin"), spec.get("reads"))
    ids = [c.id for a in out.values() for c in a.claims]
    if len(ids) != len(set(ids)):
        raise ValueError(f"{FILE.name}: claim ids must be unique: {sorted({i for i in ids if ids.count(i) > 1})}")
    return out


@functools.cache
def disagreements() -> list[dict]:
    """Where the paper's code and its text disagree, and which one our rows follow (basu2023.yaml)."""
    return yaml.safe_load(FILE.read_text(encoding="utf-8")).get("disagreements") or []


def artefact(name: str) -> Artefact:
    try:
        return artefacts()[name]
    except KeyError:
        raise PaperKeyError(f"{FILE.name} has no artefact {name!r}; it has: {', '.join(artefacts())}") from None


def find(name: str, row: str, *columns) -> Number | None:
    """The number at `row` (then `columns`, compared as text) of artefact `name`, or None where that
    row or column is not there. An unknown artefact, or a lookup that stops above or goes below
    the numbers, is an error."""
    node, path = artefact(name).rows, [name]
    for key in (row, *columns):
        if isinstance(node, Number):
            raise PaperKeyError(f"{FILE.name}: {' '.join(path)} is one number, with no column {key!r}")
        if str(key) not in node:
            return None
        node = node[str(key)]
        path.append(repr(str(key)))
    if not isinstance(node, Number):
        raise PaperKeyError(f"{FILE.name}: {' '.join(path)} holds a number per {', '.join(node)}: name one")
    return node


def paper_number(name: str, row: str, *columns) -> Number:
    """The number at `row` (then `columns`) of artefact `name`; one line naming what is there otherwise."""
    number = find(name, row, *columns)
    if number is None:
        node, path = artefact(name).rows, name
        for key in (row, *columns):
            if str(key) not in node:
                raise PaperKeyError(f"{FILE.name}: {path} has no {'row' if path == name else 'column'} {str(key)!r}; "
                                    f"it has: {', '.join(node)}")
            node, path = node[str(key)], f"{path} {str(key)!r}"
    return number
