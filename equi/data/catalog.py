"""Every dataset the paper's tables use: where it comes from, its licence, how it is verified, and
where it lies under the data folder (``paths.data``; ``data/`` in the repository by default).

``make data`` / ``python run.py data [name …]`` fetch them; a run that misses one fetches what it
needs through the same code (``download=false`` turns that off). Files are pinned by sha256 here,
except torchvision's CIFAR archives, which torchvision pins by md5 itself. With
``EQUI_DATA_MIRROR`` each file is read from the same relative path under the mirror; a folder
mirror may also hold CIFAR-10 as image folders (``cifar10-jpg/{train,test}/<class>/*.jpg``, the
layout of our offline copy), which are copied in and checked against one digest of all 60,000.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from torchvision import datasets
from torchvision.datasets.utils import extract_archive

from ..errors import ConfigError, MissingAssetError, UserError, one_line
from .download import RemoteFile, fetch, human, mirror, online, source_of

SCAN_COMMIT = "c4b756cbc010d75c912f16c42c8f15dc6b7e6c8f"  # brendenlake/SCAN
REGARD_COMMIT = "7f8d08ea4f33bf3368c5cb0d0ac5f9c515625546"  # ewsheng/nlg-bias
WORDS_COMMIT = "f5459ceda80ff710528a58d3205c617692b2c0e3"  # iasonsky/EfficientEquivariantTransferLearning


def _github(repo: str, commit: str, path: str, dest: str, size: int, sha256: str) -> RemoteFile:
    """`path` of a repository at a pinned commit, kept as `dest` under the data folder."""
    return RemoteFile(dest, f"https://raw.githubusercontent.com/{repo}/{commit}/{path}", size, sha256)


def _scan(path: str, size: int, sha256: str) -> RemoteFile:
    """A SCAN release file, kept in the release's own layout under scan/."""
    return _github("brendenlake/SCAN", SCAN_COMMIT, path, f"scan/{path}", size, sha256)


def _torchvision(release: type, folder: str, size: int) -> RemoteFile:
    return RemoteFile(f"{folder}/{release.filename}", release.url, size, md5=release.tgz_md5)


@dataclass(frozen=True)
class Dataset:
    """One dataset: its files (or one archive unpacked in place) and the test that it is usable."""

    name: str
    what: str
    tasks: tuple[str, ...]
    licence: str
    folder: str  # under the data folder
    files: tuple[RemoteFile, ...]
    archive: bool = False  # files is one archive (an image set), unpacked into the data folder and then removed
    note: str = ""

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def missing_files(self, root: Path) -> list[RemoteFile]:
        return [f for f in self.files if not (root / f.path).is_file()]

    def problem(self, root: Path, needed: tuple[str, ...] | None = None) -> str | None:
        """What keeps the dataset (or only the `needed` files of it) from being used, or None."""
        if self.archive:
            from . import imagesets

            folder = root / self.folder
            return None if imagesets.missing(self.name, folder) is None else f"nothing readable in {folder}"
        missing = [f.path for f in self.missing_files(root) if needed is None or f.path in needed]
        return f"missing {', '.join(missing)}" if missing else None


DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset("scan", "SCAN release (Lake & Baroni 2018)", ("scan",), "BSD-3-Clause", "scan", (
                _scan("LICENSE", 1532, "5caff9408d400e1d9b271bf48b967154cdf6a37c16c965f91775da3af9291f67"),
                _scan("tasks.txt", 4080388, "d824c7d9e9149ba497e25f701981dac79954e04bf670d22e5c209f076ac6c89f"),
                _scan("simple_split/tasks_train_simple.txt", 3267938, "941bb8a088c5f53ceff12fde902dc008933cf0c4203cc672c47b5f79d73262dd"),
                _scan("simple_split/tasks_test_simple.txt", 812450, "1fe1c8f5a19d0dc40e41bab94278f45f66f3dc415a978bd29855a23440610fc6"),
                _scan("length_split/tasks_train_length.txt", 2723418, "b034212dc7cf87ce62f3a067dd6ad49c4d5cd18d51d615d13825516bcb1ebbc2"),
                _scan("length_split/tasks_test_length.txt", 1356970, "0760752ed34a75116ae11dcc1ee17526b7500060da1366540730fa24894d7db3"),
                _scan("add_prim_split/tasks_train_addprim_jump.txt", 2579619, "e3c78485692e028eed4205e1b8b3fd0e785ef2c12d45b5b89204dadf5b239e23"),
                _scan("add_prim_split/tasks_test_addprim_jump.txt", 1531555, "8147ae2651422c701162e174d9d66158daa57858a26b30317ac61797118ac7a5"),
                _scan("add_prim_split/tasks_train_addprim_turn_left.txt", 3974537, "1b3fed86055dd7689d217f1b90cc8960aeb1cf200f4f209dc47935761b05304c"),
                _scan("add_prim_split/tasks_test_addprim_turn_left.txt", 173679, "15a82c2d25ac7c3c1fff7e18051fb085974ef3617de895c520d02144396a10e2"),
                _scan("template_split/tasks_train_template_around_right.txt", 2558693, "d5d35d174d557645fc61f289424afa0d95fde21422c59a9819e2d0fcfa9d419f"),
                _scan("template_split/tasks_test_template_around_right.txt", 1243177, "fc78a5d1077dc2c206d6c42ed89fb9022867618c3f331179bafd3ec1ca699474"),
            )),
    Dataset("cifar10", "CIFAR-10 (Krizhevsky 2009)", ("cnn", "clip"), "none stated; cite Krizhevsky 2009", "cifar10",
            (_torchvision(datasets.CIFAR10, "cifar10", 170498071),), archive=True),
    Dataset("cifar100", "CIFAR-100 (Krizhevsky 2009)", ("clip",), "none stated; cite Krizhevsky 2009", "cifar100",
            (_torchvision(datasets.CIFAR100, "cifar100", 169001437),), archive=True,
            note="only with real CLIP weights"),
    Dataset("imagenetv2", "ImageNet-V2 matched-frequency (Recht et al. 2019)", ("clip",),
            "images under Flickr terms; research use", "imagenetv2-matched-frequency-format-val",
            (RemoteFile("imagenetv2-matched-frequency.tar.gz",
                        "https://huggingface.co/datasets/vaishaal/ImageNetV2/resolve/main/imagenetv2-matched-frequency.tar.gz",
                        1_260_000_000),),  # no sha256 could be had offline: checked by its layout once unpacked
            archive=True, note="only with real CLIP weights; not hash-pinned"),
    Dataset("regard", "regard annotations (Sheng et al. 2019)", ("nlg",), "none stated; cite Sheng et al. 2019", "nlg/regard", tuple(
                _github("ewsheng/nlg-bias", REGARD_COMMIT, f"data/regard/{name}.tsv", f"nlg/regard/{name}.tsv", size, sha)
                for name, size, sha in (
                    ("train", 21638, "2b734fae84fa82ae969b5183607760c905cd333b90fd27e8d83ed311c6f923b0"),
                    ("train_other", 24320, "691dc49d3493ea878a77d9a6f3b77b6b01af2a5c3f3bf71d758969e8bf40aff7"),
                    ("dev", 5840, "6d1eb2e617acfb55ddfe0e77f54f836f3093a379934e7aab07b1cb3e6facb5db"),
                    ("test", 3140, "1ac5fbd901cba6f441c153234eca41cb29d8719529ca81e760213bd9c7813017")))),
    Dataset("gender_words", "gender word lists (an EquiNLG reproduction)", ("nlg",), "MIT (its LICENSE beside them)", "nlg/fairness_words", tuple(
                _github("iasonsky/EfficientEquivariantTransferLearning", WORDS_COMMIT, path,
                        f"nlg/fairness_words/{Path(path).name}", size, sha)
                for path, size, sha in (
                    ("EquiNLG/dataset/fairness_words/male_words.txt", 460, "6bbd06542c771e51d6cc27dd54d207b402840c1bab02924d90426b8d54fb4641"),
                    ("EquiNLG/dataset/fairness_words/female_words.txt", 520, "647f709597e20de224587d4603c0a9c53ec884ef387f102bddcb1b2fe4d27655"),
                    ("LICENSE", 1140, "826f6547e17b095d75e9a6f2db846317c990b3d2427215fadac2b444361300c1")))),
)}

# CIFAR-10 as image folders in a folder mirror: one sha256 over "<relative path>\0<sha256 of the file>\n"
# for every .jpg in sorted order (the 60,000 images of the CIFAR-10-images repository's layout).
CIFAR10_JPG = ("cifar10-jpg", 60000, "78086fc20c1b1c15a635979bf92b1d16ebc3ca6a8a061ac1b650bc528adcbf13")


def _mirrored_image_folders() -> Path | None:
    """A folder mirror's CIFAR-10 image folders (cifar10-jpg/), if it has them."""
    base = mirror()
    if base is None or base.startswith(("http://", "https://")):
        return None
    source = Path(base).expanduser().resolve() / CIFAR10_JPG[0]
    return source if (source / "train").is_dir() else None


def fetchable(name: str, root: Path) -> bool:
    """Whether every missing file of the dataset can be had now from its source (the mirror, or the
    original hosts answering a connection)."""
    if name == "cifar10" and _mirrored_image_folders():
        return True
    for file in DATASETS[name].missing_files(root):
        source = source_of(file)
        if not (online(source) if source.startswith(("http://", "https://")) else Path(source).is_file()):
            return False
    return True


def by_name(name: str) -> Dataset:
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name]


def tree_digest(folder: Path) -> tuple[int, str]:
    """(number of .jpg files, one sha256 over their relative paths and contents)."""
    h, n = hashlib.sha256(), 0
    for path in sorted(folder.rglob("*.jpg")):
        h.update(f"{path.relative_to(folder).as_posix()}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
        n += 1
    return n, h.hexdigest()


def _cifar10_from_image_folders(root: Path) -> bool:
    """Copy a folder mirror's cifar10-jpg/ into the data folder's cifar10/, verified; False if it has none."""
    source = _mirrored_image_folders()
    if source is None:
        return False
    name, count, expected = CIFAR10_JPG
    part = root / f".{name}.part"
    shutil.rmtree(part, ignore_errors=True)
    for split in ("train", "test"):
        shutil.copytree(source / split, part / split)
    got = tree_digest(part)
    if got != (count, expected):
        shutil.rmtree(part)
        raise UserError(f"{source}: {got[0]} images with digest {got[1]}, expected {count} with {expected}; nothing was kept")
    target = root / "cifar10"
    target.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        (part / split).rename(target / split)
    part.rmdir()
    return True


def ensure(name: str, root: Path, download: bool, needed: tuple[str, ...] | None = None) -> Path:
    """The dataset's folder under `root`, fetched first when it (or its `needed` files) is missing and
    downloads are allowed; else a one-line MissingAssetError naming it and `make data`."""
    dataset = by_name(name)
    root = Path(root)
    if dataset.problem(root, needed) is None:
        return root / dataset.folder
    if not download:
        raise MissingAssetError(f"{dataset.what} is missing from {root / dataset.folder} ({dataset.problem(root, needed)}); "
                                f"run `make data` (or `python run.py data {name}`), or set download=true")
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".fetch.lock", "w") as lock:  # one fetcher at a time: DDP ranks, parallel sweeps
        fcntl.flock(lock, fcntl.LOCK_EX)
        if dataset.problem(root, needed) is not None and not (name == "cifar10" and _cifar10_from_image_folders(root)):
            for file in [f for f in dataset.missing_files(root) if needed is None or dataset.archive or f.path in needed]:
                path = fetch(file, root, dataset.what)
                if dataset.archive:
                    print(f"unpacking {path.name}", flush=True)
                    extract_archive(str(path), str(path.parent), remove_finished=True)
    problem = dataset.problem(root, needed)
    if problem:
        raise MissingAssetError(f"{dataset.what}: fetched, but {problem}")
    return root / dataset.folder


def names(args: list[str]) -> list[str]:
    """Dataset names from `run.py data` arguments: dataset names, or task names for all their datasets."""
    if not args:
        return list(DATASETS)
    chosen = []
    for arg in args:
        by_task = [d.name for d in DATASETS.values() if arg in d.tasks]
        if arg not in DATASETS and not by_task:
            raise ConfigError(f"unknown dataset or task {arg!r}; datasets: {', '.join(DATASETS)}")
        chosen += [arg] if arg in DATASETS else by_task
    return list(dict.fromkeys(chosen))


def main(args: list[str]) -> int:
    """`python run.py data [name|task …] [paths.data=…]`: fetch each dataset; one line each; exit 2
    if any could not be had."""
    from ..config import compose_config

    overrides = [a for a in args if "=" in a]
    try:
        chosen = names([a for a in args if "=" not in a])
        root = Path(compose_config(overrides).paths.data).expanduser().resolve()
    except Exception as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    print(f"data folder: {root}" + (f" (mirror: {mirror()})" if mirror() else ""))
    failed = 0
    for name in chosen:
        dataset = DATASETS[name]
        if dataset.problem(root) is None:
            print(f"{name}: present in {root / dataset.folder}")
            continue
        try:
            ensure(name, root, download=True)
            print(f"{name}: fetched into {root / dataset.folder} ({human(dataset.size)}, {dataset.licence})")
        except UserError as err:
            failed += 1
            print(f"error: {name}: {one_line(err)}", file=sys.stderr)
    return 2 if failed else 0
