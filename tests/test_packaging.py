"""The core needs torch alone: equi's wheel, installed with --no-deps in a fresh virtual environment
that sees torch (and what torch itself requires) from ours and nothing else, imports and wraps a model.

Offline: the wheel is built without build isolation (setuptools is in our environment) and the fresh
environment gets no pip of its own; ours installs into it (pip --python).
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("hydra", "omegaconf", "open_clip", "transformers", "timm", "torchvision", "stable_baselines3", "gymnasium",
         "wandb", "sklearn")

# Runs in the fresh environment: argv[1] is our site-packages, argv[2] the JSON list of importable top-level names.
CHECK = r'''
import importlib.abc, json, sys, time

ALLOWED = set(json.loads(sys.argv[2])) | set(sys.stdlib_module_names) | {"equi"}
PLATFORM_STDLIB = "_sysconfigdata_"  # sysconfig's per-platform module, not in stdlib_module_names
refused = []


class CoreOnly(importlib.abc.MetaPathFinder):
    """Refuses every top-level import outside the stdlib, torch and torch's own requirements: what a
    torch-only install would lack (torch's optional imports, numpy say, take the refusal as absence)."""

    def find_spec(self, name, path=None, target=None):
        if "." not in name and name not in ALLOWED and not name.startswith(PLATFORM_STDLIB):
            refused.append(name)
            raise ModuleNotFoundError(f"{name} is not installed in a torch-only environment", name=name)
        return None


sys.meta_path.insert(0, CoreOnly())
sys.path.append(sys.argv[1])  # after the fresh environment's own site-packages: equi comes from the wheel
start = time.perf_counter()
import equi
import_seconds = time.perf_counter() - start
import torch
from torch import nn

torch.manual_seed(0)
model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 5))
x = torch.randn(3, 3, 16, 16)
errors = equi.wrap(model, group="rot90", method="equitune").check_equivariance(x, atol=1e-5)
assert (model(torch.rot90(x, 1, (-2, -1))) - model(x)).abs().max() > 1e-3, "the model alone must not be invariant"
lam = equi.wrap(model, group="rot90", method="lambda", features="2", example_input=x)
lam.check_equivariance(x, atol=1e-5)
print(json.dumps({"equi": equi.__file__, "import_seconds": import_seconds, "max_error": max(errors.values()),
                  "modules": sorted({m.split(".")[0] for m in sys.modules}), "refused": sorted(set(refused))}))
'''


def torch_import_names() -> list[str]:
    """Top-level import names of torch and of every distribution it requires (markers evaluated here)."""
    names_of: dict[str, set[str]] = {}
    for name, dists in metadata.packages_distributions().items():
        for dist in dists:
            names_of.setdefault(dist.lower().replace("_", "-"), set()).add(name.split("/")[0])
    names, todo, seen = set(), ["torch"], set()
    while todo:
        dist = todo.pop()
        if dist in seen:
            continue
        seen.add(dist)
        names |= names_of.get(dist, set())
        for requirement in map(Requirement, metadata.requires(dist) or []):
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name.lower().replace("_", "-"))
    return sorted(names)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """equi's wheel, built from a copy of the sources (setuptools would leave build/ in the checkout)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(REPO / "equi", source / "equi", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"),
                    str(source)], check=True, capture_output=True, text=True)
    return next((tmp / "dist").glob("equi-*.whl"))


def test_the_wheel_installs_and_wraps_a_model_with_torch_alone(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True, text=True)
    run = subprocess.run([str(python), "-I", "-c", CHECK, sysconfig.get_paths()["purelib"], json.dumps(torch_import_names())],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.splitlines()[-1])
    assert Path(report["equi"]).is_relative_to(venv), report["equi"]
    assert not set(HEAVY) & set(report["modules"]), set(HEAVY) & set(report["modules"])
    print(f"\nwheel {wheel.name}: {wheel.stat().st_size / 1024:.0f} KiB; import equi (torch only): "
          f"{report['import_seconds']:.2f} s; refused (optional for torch): {', '.join(report['refused']) or 'none'}")


def test_the_wheel_holds_the_data_files_read_at_run_time_and_requires_torch_alone(wheel):
    """equi/paper's YAML files are read beside their modules; everything else is an extra."""
    archive = zipfile.ZipFile(wheel)
    assert {"equi/paper/basu2023.yaml", "equi/paper/budgets.yaml", "equi/adapters.py"} <= set(archive.namelist())
    dist_info = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
    requires = [line for line in archive.read(dist_info).decode().splitlines() if line.startswith("Requires-Dist:")]
    assert [line for line in requires if "extra ==" not in line] == ["Requires-Dist: torch>=2.1"]
