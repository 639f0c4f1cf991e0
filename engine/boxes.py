"""Box choice's inputs and outputs: ``Box`` and ``Item`` (with their validation), the
``PackedBox``/``PackResult`` a choice returns, the built-in catalogue ``DEFAULT_BOXES`` and
``load_boxes`` for a JSON catalogue. The fitting and the choice live in ``packing`` (which
re-exports these names)."""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from oms.engine.errors import FieldViolation, ValidationError

__all__ = [
    "Box",
    "Item",
    "Placement",
    "PackedBox",
    "PackResult",
    "DEFAULT_BOXES",
    "load_boxes",
]

#: ``(x, y, z, l, w, h)`` in mm: the item's corner nearest the box origin and its extent along
#: the box's length (x), width (y) and height (z) after rotation.
Placement = tuple[int, int, int, int, int, int]


class _Cuboid:
    """Length x width x height in mm, shared by boxes and the items packed into them."""

    length_mm: int
    width_mm: int
    height_mm: int

    @property
    def dims(self) -> tuple[int, int, int]:
        return (self.length_mm, self.width_mm, self.height_mm)

    @property
    def volume_mm3(self) -> int:
        return self.length_mm * self.width_mm * self.height_mm


@dataclass(frozen=True)
class Box(_Cuboid):
    """A shipping container. Dimensions are inner dimensions in mm."""

    name: str
    length_mm: int
    width_mm: int
    height_mm: int
    max_weight_g: int
    cost_cents: int


@dataclass(frozen=True)
class Item(_Cuboid):
    """One physical unit to pack (a line of quantity 3 is three Items)."""

    sku: str
    length_mm: int
    width_mm: int
    height_mm: int
    weight_g: int


@dataclass
class PackedBox:
    """One package: ``items`` are indices into the ``items`` given to ``pack`` and
    ``placements[k]`` is where ``items[k]`` sits."""

    box: Box
    items: list[int]
    weight_g: int
    placements: list[Placement] = field(default_factory=list)


@dataclass
class PackResult:
    packages: list[PackedBox]
    cost_cents: int


# A realistic small-parcel catalogue (inner dimensions; US stock sizes rounded to mm; costs
# are typical per-unit prices of corrugated stock in volume, in cents).
DEFAULT_BOXES: tuple[Box, ...] = (
    Box("padded-envelope", 240, 340, 25, 1_000, 35),  # #4 bubble mailer, 9.5 x 13.5 in
    Box("mailer-s", 229, 152, 51, 2_000, 55),  # 9 x 6 x 2 in
    Box("box-s", 203, 152, 102, 5_000, 75),  # 8 x 6 x 4 in
    Box("box-m", 305, 229, 152, 10_000, 110),  # 12 x 9 x 6 in
    Box("box-l", 406, 305, 254, 20_000, 175),  # 16 x 12 x 10 in
    Box("carton-xl", 508, 406, 356, 25_000, 260),  # 20 x 16 x 14 in
    Box("carton-xxl", 610, 457, 457, 30_000, 350),  # 24 x 18 x 18 in
)


# --------------------------------------------------------------------------- validation


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_box(path: str, b: object, out: list[FieldViolation]) -> None:
    if not isinstance(b, Box):
        out.append(FieldViolation(path, f"must be a Box, got {type(b).__name__}"))
        return
    if not isinstance(b.name, str) or not b.name:
        out.append(FieldViolation(f"{path}.name", f"must be a non-empty string, got {b.name!r}"))
    for f in ("length_mm", "width_mm", "height_mm", "max_weight_g"):
        v = getattr(b, f)
        if not _is_int(v) or v <= 0:
            out.append(FieldViolation(f"{path}.{f}", f"must be a positive integer, got {v!r}"))
    if not _is_int(b.cost_cents) or b.cost_cents < 0:
        out.append(FieldViolation(f"{path}.cost_cents",
                                  f"must be a non-negative integer, got {b.cost_cents!r}"))


def _check_item(path: str, it: object, out: list[FieldViolation]) -> None:
    if not isinstance(it, Item):
        out.append(FieldViolation(path, f"must be an Item, got {type(it).__name__}"))
        return
    if not isinstance(it.sku, str) or not it.sku:
        out.append(FieldViolation(f"{path}.sku", f"must be a non-empty string, got {it.sku!r}"))
    for f in ("length_mm", "width_mm", "height_mm"):
        v = getattr(it, f)
        if not _is_int(v) or v <= 0:
            out.append(FieldViolation(f"{path}.{f}", f"must be a positive integer, got {v!r}"))
    if not _is_int(it.weight_g) or it.weight_g < 0:
        out.append(FieldViolation(f"{path}.weight_g",
                                  f"must be a non-negative integer, got {it.weight_g!r}"))


def _validate_boxes(boxes: Sequence[Box], path: str = "boxes") -> None:
    out: list[FieldViolation] = []
    if isinstance(boxes, (str, bytes)) or not isinstance(boxes, Sequence):
        raise ValidationError.one(path, f"must be a list of Box, got {type(boxes).__name__}")
    if not boxes:
        raise ValidationError.one(path, "must contain at least one box")
    seen: dict[str, int] = {}
    for i, b in enumerate(boxes):
        _check_box(f"{path}[{i}]", b, out)
        if isinstance(b, Box) and isinstance(b.name, str):
            if b.name in seen:
                first = f"{path}[{seen[b.name]}]"
                out.append(FieldViolation(f"{path}[{i}].name",
                                          f"duplicate box name {b.name!r} (also {first})"))
            seen.setdefault(b.name, i)
    if out:
        raise ValidationError(out)


_BOX_FIELDS = ("name", "length_mm", "width_mm", "height_mm", "max_weight_g", "cost_cents")


def load_boxes(json_text: str | bytes) -> list[Box]:
    """A box catalogue from JSON: a list of objects with exactly the fields of ``Box``.

    Example: ``[{"name": "box-s", "length_mm": 203, "width_mm": 152, "height_mm": 102,
    "max_weight_g": 5000, "cost_cents": 75}]``. Raises ``ValidationError`` (paths like
    ``boxes[2].height_mm``) on malformed JSON, missing/unknown fields, bad values or duplicate
    names.
    """
    try:
        data = json.loads(json_text)
    except (ValueError, TypeError) as e:
        raise ValidationError.one("boxes", f"not valid JSON: {e}") from None
    if not isinstance(data, list):
        raise ValidationError.one("boxes", f"must be a JSON list, got {type(data).__name__}")
    out: list[FieldViolation] = []
    boxes: list[Box] = []
    for i, obj in enumerate(data):
        path = f"boxes[{i}]"
        if not isinstance(obj, dict):
            out.append(FieldViolation(path, f"must be an object, got {obj!r}"))
            continue
        missing = [f for f in _BOX_FIELDS if f not in obj]
        unknown = sorted(set(obj) - set(_BOX_FIELDS))
        for f in missing:
            out.append(FieldViolation(f"{path}.{f}", "is required"))
        for f in unknown:
            out.append(FieldViolation(f"{path}.{f}", f"unknown field (value {obj[f]!r})"))
        if missing or unknown:
            continue
        boxes.append(Box(**{f: obj[f] for f in _BOX_FIELDS}))
    if out:
        raise ValidationError(out)
    _validate_boxes(boxes)
    return boxes


def _validate_items(items: Sequence[Item]) -> None:
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise ValidationError.one("items", f"must be a list of Item, got {type(items).__name__}")
    out: list[FieldViolation] = []
    for i, it in enumerate(items):
        _check_item(f"items[{i}]", it, out)
    if out:
        raise ValidationError(out)
