"""Groups acting on images (…, H, W): rotations, a true mirror, both, and the half turn.

Right-angle rotations and the mirror are exact (torch.rot90, torch.flip). ``rot(n)`` and
``dihedral(n)`` with n = 8, 16, … also turn by other angles, which resamples the image, so their
equivariance holds up to interpolation error; see ``SpatialAction``. The output action is the
same spatial transform, for dense outputs such as segmentation maps; classifiers use the
operator's invariant mode instead. `rot90_views` is C4 acting on what a frozen network saw of an
image's four quarter turns (cached features).

Names (``BY_NAME``, what configs choose): "c8", "c16" for C_n = ``rot(n)`` and "d8", "d16" for
D_n = ``dihedral(n)``; C4 and D4 keep their older names "rot90" and "rot90_flip".
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F

from .base import FiniteGroup, cyclic_table, dihedral_table


def inscribed_disc(x: torch.Tensor) -> torch.Tensor:
    """1 on the pixels whose centre lies within half the side of the image centre, else 0 (H, W).
    Symmetric under quarter turns and mirrors, so those map it onto itself exactly."""
    offsets = torch.arange(x.shape[-1], device=x.device, dtype=x.dtype) - (x.shape[-1] - 1) / 2
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= (x.shape[-1] / 2) ** 2).to(x.dtype)


def resample_rotated(x: torch.Tensor, angle: float, interpolation: str) -> torch.Tensor:
    """x (…, S, S) turned counter-clockwise by `angle` radians about its centre (the direction of
    torch.rot90), sampled by grid_sample; what comes from outside the image is zero."""
    size = x.shape[-1]
    flat = x.reshape(1, -1, size, size)
    cos, sin = math.cos(angle), math.sin(angle)
    theta = torch.tensor([[[cos, -sin, 0.0], [sin, cos, 0.0]]], dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta, list(flat.shape), align_corners=False)
    return F.grid_sample(flat, grid, mode=interpolation, padding_mode="zeros", align_corners=False).reshape(x.shape)


class SpatialAction:
    """Element g ↦ (mirror f, turns k): x ↦ rotate(mirror^f(x), k · 360°/turns), counter-clockwise.

    The mirror flips the width axis (left ↔ right); it is not a 180° rotation. Right angles are
    exact (torch.rot90). When some element turns by another angle, that element resamples the
    image (grid_sample, `interpolation`), and every element, the identity too, acts on the
    inscribed disc only: g·x = disc · rotate(disc · mirror^f(x)). A turn of the whole square would
    carry the corners out of the frame and bring zeros back, so g⁻¹·(g·x) would differ from x by
    whole corners; on the disc it differs by interpolation error alone, and the identity is a
    projection that the rest of the group respects (its image is what the group permutes).
    """

    def __init__(self, elements: list[tuple[int, int]], turns: int = 4, interpolation: str = "bilinear"):
        self.elements, self.turns, self.interpolation = elements, turns, interpolation
        self.on_disc = any(4 * k % turns for _, k in elements)

    def check(self, x: torch.Tensor) -> None:
        if x.ndim < 3:
            raise ValueError(f"images must have shape (B, …, H, W), got {tuple(x.shape)}")
        turns_sideways = any(4 * k % self.turns or 4 * k // self.turns % 2 for _, k in self.elements)
        if turns_sideways and x.shape[-1] != x.shape[-2]:
            turning = f"rotating by 360°/{self.turns}" if self.on_disc else "rot90"
            raise ValueError(f"{turning} needs square images, got H×W = {x.shape[-2]}×{x.shape[-1]}")
        if self.on_disc and not x.is_floating_point():
            raise ValueError(f"rotations by 360°/{self.turns} interpolate: images must be floating point, got {x.dtype}")

    def __call__(self, g: int, x: torch.Tensor) -> torch.Tensor:
        mirror, k = self.elements[g]
        if self.on_disc:
            x = x * inscribed_disc(x)
        if mirror:
            x = torch.flip(x, dims=(-1,))
        if 4 * k % self.turns == 0:
            quarter_turns = 4 * k // self.turns
            return torch.rot90(x, quarter_turns, dims=(-2, -1)) if quarter_turns else x
        return resample_rotated(x, 2 * math.pi * k / self.turns, self.interpolation) * inscribed_disc(x)


def _image_group(name: str, table: torch.Tensor, elements: list[tuple[int, int]], turns: int = 4,
                 interpolation: str = "bilinear") -> FiniteGroup:
    action = SpatialAction(elements, turns, interpolation)
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


def rot(n: int, interpolation: str = "bilinear") -> FiniteGroup:
    """C_n: rotations by multiples of 360°/n (counter-clockwise), named "c{n}".

    For n = 1, 2, 4 this is exact on whole images (rot(4) acts as rot90). Otherwise every element
    acts on the inscribed disc (see SpatialAction) and the turns that are not right angles
    interpolate, so the group law and the operator's equivariance hold up to interpolation error,
    which depends on how smooth the image is. Measured (tests/test_groups_large.py's images: at
    most 4 cycles per side, tapered to zero at the disc's rim; 10 seeds), as fractions of the
    image's largest value, bilinear: turning by g and back errs by 0.064–0.079 at 32×32 and
    0.016–0.021 at 64×64, d16's group law by 0.070–0.091 and 0.019–0.024; an equitune-wrapped
    random CNN changes by 0.10–0.21 (32×32) and 0.04–0.08 (64×64) of what the CNN alone changes
    over the orbit. "bicubic" halves the errors at 32×32 and can leave the input's range. Where
    the disc cuts through content (a natural image's rim), resampling errs by up to about half
    the content's size, in a ring a pixel or two wide.
    """
    if n < 1:
        raise ValueError(f"C_n needs n ≥ 1 rotations, got {n}")
    return _image_group(f"c{n}", cyclic_table(n), [(0, k) for k in range(n)], n, interpolation)


def dihedral(n: int, interpolation: str = "bilinear") -> FiniteGroup:
    """D_n of order 2n, named "d{n}": element f·n + k = rotate by k·360°/n after mirroring f times,
    as in rot90_flip (dihedral(4) acts as rot90_flip). Exactness as for ``rot(n)``."""
    if n < 1:
        raise ValueError(f"D_n needs n ≥ 1 rotations, got {n}")
    return _image_group(f"d{n}", dihedral_table(n), [(f, k) for f in range(2) for k in range(n)], n, interpolation)


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


BY_NAME = {"none": identity, "rot90": rot90, "flip": flip, "rot180": rot180, "rot90_flip": rot90_flip,
           "c8": partial(rot, 8), "c16": partial(rot, 16), "d8": partial(dihedral, 8), "d16": partial(dihedral, 16)}
