"""Groups and their actions on model inputs and outputs."""

from .base import FiniteGroup, ScorePermutation, IdPermutation, TrivialAction, cyclic_table, dihedral_table
from .image import dihedral, flip, identity, rot, rot180, rot90, rot90_flip
from .rl import StateActionGroup, grid_rotations, reflection, state_action_group
from .so2 import SO2, VectorAngle, rotate
from .vocab import VocabularyGroup, token_swaps, vocabulary_cycles

__all__ = [
    "FiniteGroup", "ScorePermutation", "IdPermutation", "TrivialAction", "cyclic_table", "dihedral_table",
    "dihedral", "flip", "identity", "rot", "rot180", "rot90", "rot90_flip",
    "StateActionGroup", "grid_rotations", "reflection", "state_action_group",
    "SO2", "VectorAngle", "rotate",
    "VocabularyGroup", "token_swaps", "vocabulary_cycles",
]
