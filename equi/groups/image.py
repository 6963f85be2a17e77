"""Groups acting on images (…, H, W): 90° rotations, a true mirror, both, and the half turn.

The output action is the same spatial transform, for dense outputs such as segmentation
maps; classifiers use the operator's invariant mode instead. `rot90_views` is C4 acting
on what a frozen network saw of an image's four quarter turns (cached features).
"""

from __future__ import annotations

import torch

from .base import FiniteGroup, cyclic_table, dihedral_table


class SpatialAction:
    """Element g ↦ (mirror f, quarter turns k): x ↦ rot90^k(mirror^f(x)).

    The mirror flips the width axis (left ↔ right); it is not a 180° rotation.
    """

    def __init__(self, elements: list[tuple[int, int]]):
        self.elements = elements

    def check(self, x: torch.Tensor) -> None:
        if x.ndim < 3:
            raise ValueError(f"images must have shape (B, …, H, W), got {tuple(x.shape)}")
        if any(k % 2 for _, k in self.elements) and x.shape[-1] != x.shape[-2]:
            raise ValueError(f"rot90 needs square images, got H×W = {x.shape[-2]}×{x.shape[-1]}")

    def __call__(self, g: int, x: torch.Tensor) -> torch.Tensor:
        mirror, quarter_turns = self.elements[g]
        if mirror:
            x = torch.flip(x, dims=(-1,))
        return torch.rot90(x, quarter_turns, dims=(-2, -1)) if quarter_turns else x


def _image_group(name: str, table: torch.Tensor, elements: list[tuple[int, int]]) -> FiniteGroup:
    action = SpatialAction(elements)
    return FiniteGroup(name, table, action, action)


def rot90() -> FiniteGroup:
    """C4: rotations by 0°, 90°, 180°, 270° (counter-clockwise)."""
    return _image_group("rot90", cyclic_table(4), [(0, k) for k in range(4)])


def flip() -> FiniteGroup:
    """Z2: identity and a left-right mirror."""
    return _image_group("flip", cyclic_table(2), [(0, 0), (1, 0)])


def rot180() -> FiniteGroup:
    """Z2: identity and a 180° rotation, what the paper's code calls "flip" (torch.flip over H and W)."""
    return _image_group("rot180", cyclic_table(2), [(0, 0), (0, 2)])


def rot90_flip() -> FiniteGroup:
    """D4: the 8 symmetries of the square (element 4f + k = rotate k after mirroring f)."""
    return _image_group("rot90_flip", dihedral_table(4), [(f, k) for f in range(2) for k in range(4)])


def identity() -> FiniteGroup:
    """The trivial group; wrapping with it must give back the model's own output."""
    return _image_group("identity", cyclic_table(1), [(0, 0)])


class ViewShift:
    """C4 on a stack of the features of an image's quarter turns, (B, 4, …), view k being the
    image turned k times: turning the image by g makes view k what view k + g was."""

    def check(self, x: torch.Tensor) -> None:
        if x.ndim < 2 or x.shape[1] != 4:
            raise ValueError(f"expected the features of 4 quarter turns per image, shape (B, 4, …), got {tuple(x.shape)}")

    def __call__(self, g: int, x: torch.Tensor) -> torch.Tensor:
        return torch.roll(x, -g, dims=1) if g else x


def rot90_views() -> FiniteGroup:
    """C4 acting on cached per-rotation features the way `rot90` acts on the image itself."""
    action = ViewShift()
    return FiniteGroup("rot90_views", cyclic_table(4), action, action)


BY_NAME = {"none": identity, "rot90": rot90, "flip": flip, "rot180": rot180, "rot90_flip": rot90_flip}
