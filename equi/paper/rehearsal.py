"""A dress rehearsal of the CLIP paper targets (fig4, fig5a, fig7, fig8, fig11a, fig12) where the real
CLIP weights and datasets cannot be had: RANDOM-weight checkpoints of open_clip's RN50, RN101,
ViT-B-32 and ViT-B-16 planted where open_clip's own loader fetches the `openai` tag (the Hugging
Face hub cache), and small CIFAR-100 and ImageNet-V2 folders of random images in their releases'
layouts. The runs take the real-weight path end to end (open_clip's hub lookup, our asset checks,
data loaders, zero-shot heads, finetuning, figures), so a crash that only real weights reach shows
here; their numbers mean nothing (random weights, random images): plumbing only, never results.

    env $(python -m equi.paper.rehearsal plant /tmp/rehearsal --classes 5 --templates 1 | xargs) make fig7 \
        ARGS="logger=none task.eval_per_class=2 task.train_per_class=2 task.eval_batch=8 task.lambda_stage.steps=1 \
              task.lambda_stage.batch_size=8 task.finetune.batch_size=8" [CLIP_STEPS=2 CLIP_EVAL_EVERY=1]

(Tiny settings rather than fast=true: the targets' figure steps leave fast=true runs out.)

Everything lies under ROOT: hf/ (the hub cache: HF_HOME, HF_HUB_CACHE), data/ (EQUI_DATA),
outputs/ (EQUI_OUTPUTS: random-weight runs never mix with real runs in outputs/runs) and shim/.
The hub variables are read when huggingface_hub is imported, so the environment is set before a
process starts. shim/ holds a sitecustomize (on PYTHONPATH) that, in rehearsal processes only,
pins torchvision's CIFAR-100 md5 sums to the planted files' (the release's own sums cannot be met
by random data; the md5 check itself still runs), and, when REHEARSAL_TEMPLATES=N is set, encodes
only the first N prompt templates of each class for the zero-shot heads (ImageNet's 1000 classes
× 80 templates are an hour of a CPU; N=0 encodes one text and draws the other classes at random).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import pickle
import shutil
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

from equi.inputs import sha256_file
from equi.results import write_text_atomic

MODELS = ("RN50", "RN101", "ViT-B-32", "ViT-B-16")  # the paper's four (equi.models.clip.MODELS)
TAG = "openai"
SEED = 0
TEMPLATES_ENV = "REHEARSAL_TEMPLATES"


def hub_file(name: str, tag: str = TAG) -> tuple[str, str]:
    """(hub repo, file name) that open_clip's `create_model(name, pretrained=tag)` asks the hub for
    first: its pretrained cfg's hf_hub `org/repo/[file]`, the file defaulting to open_clip_pytorch_model.bin,
    whose .safetensors alternative it tries before it (open_clip.pretrained.download_pretrained_from_hf)."""
    import open_clip
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    cfg = open_clip.get_pretrained_cfg(name, tag)
    if not cfg.get("hf_hub"):
        raise ValueError(f"open_clip fetches {name}/{tag} from no Hugging Face hub repo (its cfg: {cfg})")
    repo, filename = os.path.split(cfg["hf_hub"])
    filename = filename or HF_WEIGHTS_NAME
    if filename == HF_WEIGHTS_NAME:
        filename = HF_SAFE_WEIGHTS_NAME
    elif filename.endswith((".bin", ".pth")):
        filename = filename[:-4] + ".safetensors"
    return repo, filename


def _commit(repo: str) -> str:
    """A 40-hex snapshot name (the hub names snapshots by commit), fixed per repo and seed."""
    return hashlib.sha1(f"equi-rehearsal|{repo}|seed{SEED}".encode()).hexdigest()


def _replace(tmp: Path, path: Path) -> None:
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def plant_weights(hub: Path, name: str) -> Path:
    """Random open_clip `name` (seed SEED) as the hub cache's snapshot of its openai repo:
    models--<org>--<repo>/{blobs/<sha256>, snapshots/<commit>/<file> → blob, refs/main}."""
    known = hub.parent / "rehearsal-weights.json"  # {name: snapshot}: a rerun checks files without open_clip
    version = metadata.version("open_clip_torch")  # whose pretrained cfgs name the repos
    planted = json.loads(known.read_text()) if known.is_file() else {}
    planted = planted if planted.get("open_clip") == version else {"open_clip": version}
    if name in planted and _whole(hub / planted[name]):
        return hub / planted[name]
    repo, filename = hub_file(name)
    folder = hub / f"models--{repo.replace('/', '--')}"
    commit = _commit(repo)
    snapshot = folder / "snapshots" / commit / filename
    ref = folder / "refs" / "main"
    if not snapshot.is_file():
        _save_random(name, folder, snapshot)
    write_text_atomic(ref, commit)  # last: the snapshot is found only once it is whole
    write_text_atomic(known, json.dumps({**planted, name: str(snapshot.relative_to(hub))}, indent=1, sort_keys=True))
    return snapshot


def _whole(snapshot: Path) -> bool:
    """The snapshot file is there (its blob too) and refs/main names its commit."""
    ref = snapshot.parent.parent.parent / "refs" / "main"
    return snapshot.is_file() and ref.is_file() and ref.read_text() == snapshot.parent.name


def _save_random(name: str, folder: Path, snapshot: Path) -> None:
    """open_clip's random init of `name` as a safetensors blob (written beside, then moved) and its snapshot link."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    filename = snapshot.name
    torch.manual_seed(SEED)
    logging.disable(logging.WARNING)  # open_clip warns that no pretrained weights were loaded: none are meant
    try:
        model = open_clip.create_model(name)
    finally:
        logging.disable(logging.NOTSET)
    blobs = folder / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    tmp = blobs / f".{filename}.{os.getpid()}.tmp"
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(tmp), metadata={"format": "pt"})
    blob = blobs / sha256_file(tmp)
    _replace(tmp, blob)
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    link = snapshot.with_name(f".{filename}.{os.getpid()}.tmp")
    link.unlink(missing_ok=True)
    link.symlink_to(os.path.relpath(blob, snapshot.parent))
    os.replace(link, snapshot)


def _random_images(n: int, generator: np.random.Generator, height: int = 32, width: int = 32) -> np.ndarray:
    return generator.integers(0, 256, size=(n, height, width, 3), dtype=np.uint8)


def _write_cifar100(folder: Path, per_class: int, classes: int, generator: np.random.Generator) -> None:
    """torchvision's cifar-100-python/ (train, test, meta: latin-1 pickles of dicts, images as
    uint8 rows of 3072 = 3 planes of 32×32), `per_class` images of each of the first `classes` labels."""
    from ..data.prompts import CIFAR100_CLASSES

    folder.mkdir(parents=True)
    for split in ("train", "test"):
        fine = [label for _ in range(per_class) for label in range(classes)]  # interleaved, as the release is shuffled
        images = _random_images(len(fine), generator)
        entry = {"filenames": [f"rehearsal_{split}_{i}.png" for i in range(len(fine))],
                 "batch_label": f"{split}ing batch 1 of 1 (random rehearsal images)",
                 "fine_labels": fine, "coarse_labels": [label // 5 for label in fine],
                 "data": images.transpose(0, 3, 1, 2).reshape(len(fine), 3072)}
        with open(folder / split, "wb") as f:
            pickle.dump(entry, f, protocol=2)
    meta = {"fine_label_names": [c.replace(" ", "_") for c in CIFAR100_CLASSES],
            "coarse_label_names": [f"superclass_{i}" for i in range(20)]}
    with open(folder / "meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)


def _write_imagenetv2(folder: Path, per_class: int, classes: int, generator: np.random.Generator) -> None:
    """The matched-frequency release: folders 0/ … 999/ of <hash>.jpeg (all 1000 made; `per_class`
    random JPEGs, landscape and portrait, in each of the first `classes`)."""
    import torch
    from torchvision.io import encode_jpeg

    for label in range(1000):
        (folder / str(label)).mkdir(parents=True)
        for i in range(per_class if label < classes else 0):
            height, width = (48, 64) if i % 2 == 0 else (64, 48)
            image = torch.from_numpy(_random_images(1, generator, height, width)[0]).permute(2, 0, 1).contiguous()
            name = hashlib.sha1(f"{label}/{i}".encode()).hexdigest()
            (folder / str(label) / f"{name}.jpeg").write_bytes(encode_jpeg(image, quality=90).numpy().tobytes())


WRITERS = {"cifar100": _write_cifar100, "imagenetv2": _write_imagenetv2}


def plant_dataset(data: Path, dataset: str, per_class: int, classes: int | None) -> dict:
    """The dataset in its folder under `data` (where equi.data.catalog looks), made once per settings
    (written beside it, then moved in whole). Returns its marker: settings, folder, md5 sums of the files."""
    marker = data / f".rehearsal-{dataset}.json"
    total = 100 if dataset == "cifar100" else 1000
    settings = {"per_class": per_class, "classes": min(classes or total, total), "seed": SEED}
    known = json.loads(marker.read_text()) if marker.is_file() else {}
    if known.get("settings") == settings and all((data / path).exists() for path in known["present"]):
        return known
    from ..data import catalog, imagesets

    folder = data / catalog.DATASETS[dataset].folder
    data.mkdir(parents=True, exist_ok=True)
    part = data / f".{folder.name}.{os.getpid()}.part"
    shutil.rmtree(part, ignore_errors=True)
    generator = np.random.default_rng([SEED, sorted(WRITERS).index(dataset)])
    files = part / imagesets.CIFAR100_FOLDER if dataset == "cifar100" else part
    WRITERS[dataset](files, per_class, settings["classes"], generator)
    md5 = {path.name: hashlib.md5(path.read_bytes()).hexdigest() for path in files.iterdir() if path.is_file()}
    present = [f"{folder.name}/{path.relative_to(part)}" for path in ([files / n for n in md5] or [part / "0", part / "999"])]
    marker.unlink(missing_ok=True)
    old = data / f".{folder.name}.{os.getpid()}.old"
    if folder.exists():
        os.replace(folder, old)
    os.replace(part, folder)
    shutil.rmtree(old, ignore_errors=True)
    known = {"settings": settings, "folder": folder.name, "present": present, "md5": md5}
    write_text_atomic(marker, json.dumps(known, indent=1))
    return known


SHIM = '''"""Rehearsal shim, written by equi.paper.rehearsal: imported at start-up only by processes whose
PYTHONPATH has this folder (the rehearsal's environment). It pins torchvision's CIFAR-100 md5 sums
to the planted random files' (pins.json beside it), and with REHEARSAL_TEMPLATES=N makes open_clip's
zero-shot heads encode only the first N prompt templates of each class (0: one class's first
template, the other classes random unit vectors)."""

import importlib.machinery
import json
import os
import sys

_PINS = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "pins.json")))


def _pin_cifar100(module):
    release = module.CIFAR100
    release.train_list = [["train", _PINS["cifar100"]["train"]]]
    release.test_list = [["test", _PINS["cifar100"]["test"]]]
    release.meta = {**release.meta, "md5": _PINS["cifar100"]["meta"]}


def _fewer_templates(module):
    build, n = module.build_zero_shot_classifier, int(os.environ["REHEARSAL_TEMPLATES"])

    def build_zero_shot_classifier(model, tokenizer, classnames, templates, *args, **kwargs):
        if n > 0:
            return build(model, tokenizer, classnames, list(templates)[:n], *args, **kwargs)
        import torch  # 0: one class's first template through the text tower, the other classes random

        first = build(model, tokenizer, list(classnames)[:1], list(templates)[:1], *args, **kwargs)
        rest = torch.randn(first.shape[0], len(classnames) - 1, generator=torch.Generator().manual_seed(0))
        weights = torch.cat([first, rest.to(first)], 1)
        return weights / weights.norm(dim=0, keepdim=True)

    module.build_zero_shot_classifier = build_zero_shot_classifier


class _AfterImport:
    """Runs a hook on a module once it has been executed (the first import of it)."""

    def __init__(self, hooks):
        self.hooks = hooks

    def find_spec(self, name, path=None, target=None):
        hook = self.hooks.get(name)
        spec = importlib.machinery.PathFinder.find_spec(name, path) if hook else None
        if spec is None or spec.loader is None:
            return None
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            hook(module)

        spec.loader.exec_module = exec_module
        return spec


_HOOKS = {"torchvision.datasets.cifar": _pin_cifar100} if "cifar100" in _PINS else {}
if os.environ.get("REHEARSAL_TEMPLATES"):
    _HOOKS["open_clip"] = _fewer_templates
sys.meta_path.insert(0, _AfterImport(_HOOKS))
'''


def plant_shim(root: Path, cifar100: dict | None) -> Path:
    """root/shim/sitecustomize.py, and pins.json: the planted CIFAR-100 files' md5 sums."""
    shim = root / "shim"
    text = json.dumps({"cifar100": cifar100["md5"]} if cifar100 else {}, indent=1, sort_keys=True)
    for name, content in (("pins.json", text), ("sitecustomize.py", SHIM)):
        if not (shim / name).is_file() or (shim / name).read_text() != content:
            write_text_atomic(shim / name, content)
    return shim


def plant(root: Path, models=MODELS, per_class: int = 2, *, classes: int | None = None,
          datasets=("cifar100", "imagenetv2"), templates: int | None = None) -> dict[str, str]:
    """Plant random openai-tag checkpoints of `models` under root/hf and `per_class` random images of
    each class (of the first `classes`; None: all, as the releases) of `datasets` under root/data;
    what is planted already is kept. Returns the environment a rehearsal runs under:
    HF_HOME, HF_HUB_CACHE (read at huggingface_hub's import), HF_HUB_OFFLINE=1, EQUI_DATA,
    EQUI_OUTPUTS, EQUI_DOWNLOAD=false, PYTHONPATH (the shim) and REHEARSAL_TEMPLATES when `templates`."""
    root = Path(root).expanduser().resolve()
    hub = root / "hf" / "hub"
    for name in models:
        plant_weights(hub, name)
    planted = {dataset: plant_dataset(root / "data", dataset, per_class, classes) for dataset in datasets}
    shim = plant_shim(root, planted.get("cifar100"))
    (root / "outputs").mkdir(parents=True, exist_ok=True)
    pythonpath = os.environ.get("PYTHONPATH")
    env = {
        "HF_HOME": str(root / "hf"),  # the hub's home (its cache, token and settings): nothing of the user's
        "HF_HUB_CACHE": str(hub),  # where open_clip's hf_hub_download and our cached_weights look
        "HF_HUB_OFFLINE": "1",  # the planted snapshot is used as is; the hub is never asked
        "EQUI_DATA": str(root / "data"),  # paths.data: the planted CIFAR-100 and ImageNet-V2
        "EQUI_OUTPUTS": str(root / "outputs"),  # paths.outputs: random-weight runs stay out of outputs/runs
        "EQUI_DOWNLOAD": "false",  # never fetch real data into the rehearsal's data folder
        "PYTHONPATH": str(shim) + (os.pathsep + pythonpath if pythonpath else ""),
    }
    if templates is not None:
        env[TEMPLATES_ENV] = str(templates)
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m equi.paper.rehearsal", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    planting = commands.add_parser("plant", help="plant random weights and data under ROOT; print the environment")
    planting.add_argument("root", type=Path)
    planting.add_argument("--models", default=",".join(MODELS), help=f"open_clip names (default {','.join(MODELS)})")
    planting.add_argument("--per-class", type=int, default=2, help="random images per class and split (default 2)")
    planting.add_argument("--classes", type=int, default=None, help="fill only the first N classes (default: all)")
    planting.add_argument("--templates", type=int, default=None,
                          help=f"zero-shot heads from the first N prompt templates only, 0: from one text "
                               f"({TEMPLATES_ENV}; default: all)")
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(models) - set(MODELS))
    if unknown or args.per_class < 1 or (args.classes is not None and args.classes < 1) or (args.templates or 0) < 0:
        parser.error(f"--models takes {','.join(MODELS)}" if unknown else
                     "--per-class and --classes take N ≥ 1, --templates N ≥ 0")
    env = plant(args.root, models, args.per_class, classes=args.classes, templates=args.templates)
    print("\n".join(f"{key}={value}" for key, value in env.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
