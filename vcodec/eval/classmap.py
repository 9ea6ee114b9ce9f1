"""Class maps between vcodec's label space (COCO80 indexes) and each ground-truth format.

vcodec's detectors all report ``class_ids`` as indexes into the 80-class COCO
list :data:`vcodec.detection.COCO80` (0 = person, 2 = car, ...).  Ground truth
comes with other numbering:

* ``coco``: official COCO category ids 1..90 (with gaps); 1 = person, 3 = car.
* ``sfu``: SFU-HW-Objects-v1 / SFU-HW-Tracks-v1 use the 80-class index order of
  the YOLO ``coco.names`` file, i.e. exactly COCO80 (identity map).
* ``mot``: MOTChallenge (MOT16/17/20) classes: 1 pedestrian, 2 person on
  vehicle, 3 car, 4 bicycle, 5 motorbike, 6 non-motorised vehicle, 7 static
  person, 8 distractor, 9 occluder, 10 occluder on the ground, 11 occluder
  full, 12 reflection, 13 crowd.  Pedestrians and vehicles map onto COCO80;
  the person-like classes the MOT benchmark treats as "don't care" (2, 7, 8,
  12, 13) become *ignore regions* of class person (a detection there is neither
  a true nor a false positive); occluders and class 6 are dropped.
"""

from __future__ import annotations

from vcodec.detection.base import COCO80, COCO80_TO_CATEGORY_ID
from vcodec.errors import ConfigError

__all__ = [
    "CLASS_MAP_FORMATS",
    "COCO_CATEGORY_TO_COCO80",
    "MOT_TO_COCO80",
    "MOT_IGNORE_CLASSES",
    "to_coco80",
    "from_coco80",
    "coco80_from_name",
]

CLASS_MAP_FORMATS = ("coco", "sfu", "mot")

#: official COCO category id -> COCO80 index
COCO_CATEGORY_TO_COCO80: dict[int, int] = {cat: i for i, cat in enumerate(COCO80_TO_CATEGORY_ID)}

#: MOTChallenge class -> COCO80 index (classes counted as objects)
MOT_TO_COCO80: dict[int, int] = {1: 0, 3: 2, 4: 1, 5: 3}
#: MOTChallenge "don't care" classes -> COCO80 index of the ignore region
MOT_IGNORE_CLASSES: dict[int, int] = {2: 0, 7: 0, 8: 0, 12: 0, 13: 0}
#: COCO80 -> MOTChallenge class (for writing MOT-style ground truth)
_COCO80_TO_MOT: dict[int, int] = {v: k for k, v in MOT_TO_COCO80.items()}

_NAME_TO_COCO80 = {name: i for i, name in enumerate(COCO80)}
# common spellings in other label files (MOT, VOC, Pascal-style names)
_NAME_TO_COCO80.update(
    {
        "pedestrian": 0,
        "motorbike": 3,
        "aeroplane": 4,
        "sofa": 57,
        "tvmonitor": 62,
        "diningtable": 60,
        "pottedplant": 58,
        "motorcycle": 3,
    }
)


def _check_format(fmt: str) -> None:
    if fmt not in CLASS_MAP_FORMATS:
        raise ConfigError(f"unknown class-map format {fmt!r}; use one of {', '.join(CLASS_MAP_FORMATS)}")


def to_coco80(fmt: str, native_id: int) -> int | None:
    """The COCO80 index of class ``native_id`` of format ``fmt`` (None: not an object class)."""
    _check_format(fmt)
    native_id = int(native_id)
    if fmt == "coco":
        return COCO_CATEGORY_TO_COCO80.get(native_id)
    if fmt == "sfu":
        return native_id if 0 <= native_id < len(COCO80) else None
    return MOT_TO_COCO80.get(native_id)


def from_coco80(fmt: str, coco80: int) -> int | None:
    """The class id format ``fmt`` uses for COCO80 index ``coco80`` (None: the format has none)."""
    _check_format(fmt)
    coco80 = int(coco80)
    if not 0 <= coco80 < len(COCO80):
        return None
    if fmt == "coco":
        return COCO80_TO_CATEGORY_ID[coco80]
    if fmt == "sfu":
        return coco80
    return _COCO80_TO_MOT.get(coco80)


def coco80_from_name(name: str) -> int | None:
    """COCO80 index of a class name (case- and space-insensitive), None when unknown."""
    key = name.strip().lower().replace("_", " ")
    if key in _NAME_TO_COCO80:
        return _NAME_TO_COCO80[key]
    return _NAME_TO_COCO80.get(key.replace(" ", ""))
