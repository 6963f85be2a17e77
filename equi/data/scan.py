"""SCAN (Lake & Baroni 2018) from a folder in the release's layout.

Vocabularies are fixed lists (not read off a split), so every split and checkpoint
agrees on token ids and a primitive seen only alone in training (jump) keeps its id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ConfigError, DataError, MissingAssetError

SPLITS = {  # name -> (train file, test file), relative to the release root
    "simple": ("simple_split/tasks_train_simple.txt", "simple_split/tasks_test_simple.txt"),
    "add_jump": ("add_prim_split/tasks_train_addprim_jump.txt", "add_prim_split/tasks_test_addprim_jump.txt"),
    "add_turn_left": ("add_prim_split/tasks_train_addprim_turn_left.txt", "add_prim_split/tasks_test_addprim_turn_left.txt"),
    "around_right": ("template_split/tasks_train_template_around_right.txt", "template_split/tasks_test_template_around_right.txt"),
    "length": ("length_split/tasks_train_length.txt", "length_split/tasks_test_length.txt"),
}
PAD, EOS, SOS = "<pad>", "<eos>", "<sos>"
COMMANDS = [PAD, EOS, "walk", "look", "run", "jump", "turn", "left", "right", "around", "opposite", "twice", "thrice", "and", "after"]
ACTIONS = [PAD, SOS, EOS, "I_WALK", "I_LOOK", "I_RUN", "I_JUMP", "I_TURN_LEFT", "I_TURN_RIGHT"]
PAD_ID, EOS_IN, SOS_ID, EOS_OUT = 0, COMMANDS.index(EOS), ACTIONS.index(SOS), ACTIONS.index(EOS)
COMMAND_WORDS = [w for w in COMMANDS if w not in (PAD, EOS, SOS)]  # what a release file may say
ACTION_WORDS = [w for w in ACTIONS if w not in (PAD, EOS, SOS)]


@dataclass
class Pairs:
    """Commands and action sequences as padded id tensors (inputs end in <eos>, outputs too)."""

    commands: list[list[str]]
    actions: list[list[str]]

    def __len__(self) -> int:
        return len(self.commands)

    def subset(self, index) -> "Pairs":
        return Pairs([self.commands[i] for i in index], [self.actions[i] for i in index])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return encode(self.commands, COMMANDS, EOS_IN), encode(self.actions, ACTIONS, EOS_OUT)


def encode(sequences: list[list[str]], vocab: list[str], eos: int) -> torch.Tensor:
    index = {w: i for i, w in enumerate(vocab)}
    width = max(len(s) for s in sequences) + 1
    try:  # one tensor from padded rows: a row at a time costs ~0.5 s per split
        return torch.tensor([[index[w] for w in seq] + [eos] + [PAD_ID] * (width - 1 - len(seq)) for seq in sequences],
                            dtype=torch.long)
    except KeyError as err:
        raise ValueError(f"word {err.args[0]!r} is not in the SCAN vocabulary") from None


def decode(ids: torch.Tensor, vocab: list[str] = ACTIONS, eos: int = EOS_OUT) -> list[str]:
    words = []
    for i in ids.tolist():
        if i == eos:
            break
        words.append(vocab[i])
    return words


def parse(path: Path) -> Pairs:
    """The pairs of a release file. Every line and word is checked here, so that a broken file stops
    the run before any training with a DataError naming the file and the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte {err.start})") from None
    commands, actions = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if not line.startswith("IN: ") or " OUT: " not in line:
            raise DataError(f"{path}:{number}: expected 'IN: … OUT: …', got {line[:60]!r}")
        if line.count(" OUT: ") > 1:
            raise DataError(f"{path}:{number}: expected one ' OUT: ', got {line.count(' OUT: ')}")
        command, action = (side.split() for side in line[4:].split(" OUT: "))
        check_words(command, COMMAND_WORDS, "command", f"{path}:{number}")
        check_words(action, ACTION_WORDS, "action", f"{path}:{number}")
        commands.append(command)
        actions.append(action)
    if not commands:
        raise DataError(f"{path}: no 'IN: … OUT: …' lines")
    return Pairs(commands, actions)


def check_words(words: list[str], known: list[str], kind: str, where: str) -> None:
    """A word without a token id would otherwise stop the run only when a batch is encoded, unnamed."""
    for word in words:
        if word not in known:
            raise DataError(f"{where}: word {word!r} is not in the SCAN {kind} vocabulary (known: {', '.join(known)})")


def split_files(split: str) -> tuple[str, str]:
    """(train file, test file) of a split, relative to the release root."""
    if split not in SPLITS:
        raise ConfigError(f"unknown SCAN split {split!r}; choose one of: {', '.join(SPLITS)}")
    return SPLITS[split]


def release_files(*splits: str) -> tuple[str, ...]:
    """The splits' files as the data catalog names them (``catalog.ensure("scan", …)``'s needed files)."""
    return tuple(f"scan/{f}" for split in splits for f in split_files(split))


def load_split(root: str | Path, split: str) -> tuple[Pairs, Pairs]:
    """(train, test) pairs of a SCAN split from a release folder (`catalog.ensure("scan", …)` fetches one)."""
    paths = [Path(root) / f for f in split_files(split)]
    for path in paths:
        if not path.is_file():
            raise MissingAssetError(f"SCAN file {path} is missing; run `make data` (or `python run.py data scan`), "
                                    "or set paths.data")
    return parse(paths[0]), parse(paths[1])


def hold_out(train: Pairs, fraction: float, seed: int) -> tuple[Pairs, Pairs]:
    """Split the training file into (train, validation) with a fixed seed."""
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = int(round(len(train) * fraction))
    return train.subset(order[n_val:]), train.subset(order[:n_val])
