"""`TilingSpec`: the tile geometry of a run trained for sleap-nn's tiled inference.

A training config whose ``data_config.preprocessing.tiling.enabled`` is true is
run by sleap-nn in overlapping square tiles at the frame's own size (no size
matching), the tiles' maps blended into one map per frame. The geometry is fixed
at training (sleap-nn's ``check_tiling_parity`` refuses other values at
inference), so the spec holds the training values. sleap-nn's runtime knobs
(``tile_batch_size``, ``accumulator_device``, ``cpu_thresh``) change where and in
what batches tiles run, not the maps, and are not kept.
"""

from __future__ import annotations

from typing import Mapping, Optional

import attrs

from sleap_export.core.errors import InputError

BLENDS = ("gaussian", "pyramid", "constant")


def _between(low: float, high: float, low_included: bool = True):
    """attrs validator: ``low <= value <= high`` (``low < value`` unless ``low_included``), one line."""

    def check(instance, attribute, value) -> None:
        if (value >= low if low_included else value > low) and value <= high:
            return
        opening = "[" if low_included else "("
        raise ValueError(f"{attribute.name.replace('_', '-')} must be in {opening}{low:g}, {high:g}], got {value!r}")

    return check


def _at_least(low: int):
    def check(instance, attribute, value) -> None:
        if value < low:
            raise ValueError(f"{attribute.name.replace('_', '-')} must be at least {low}, got {value!r}")

    return check


def _one_of_blends(instance, attribute, value) -> None:
    if value not in BLENDS:
        raise ValueError(f"blend must be one of {', '.join(BLENDS)}, got {value!r}")


@attrs.frozen
class TilingSpec:
    """sleap-nn's tile geometry (``TilingConfig``'s fields that shape the merged maps)."""

    # Square tile side in input pixels (after input scaling); a multiple of the max and output strides.
    tile_size: int = attrs.field(converter=int, validator=_at_least(1))
    # Requested overlap of neighbouring tiles in pixels; raised to min_overlap_fraction * tile_size.
    overlap: int = attrs.field(converter=int, validator=_at_least(0))
    min_overlap_fraction: float = attrs.field(default=0.25, converter=float, validator=_between(0.0, 1.0))
    # The importance window that weights each tile's map where tiles overlap.
    blend: str = attrs.field(default="gaussian", validator=_one_of_blends)
    # The gaussian window's standard deviation as a fraction of the tile side.
    sigma_scale: float = attrs.field(default=0.125, converter=float, validator=_between(0.0, 1.0, low_included=False))

    @classmethod
    def from_training_config(cls, config: Mapping, source: str = "the training config") -> Optional["TilingSpec"]:
        """The tiling of a parsed sleap-nn training config (dict or OmegaConf), or None where it has none enabled."""
        preprocessing = (config.get("data_config") or {}).get("preprocessing") or {}
        tiling = preprocessing.get("tiling")
        if not tiling or not tiling.get("enabled"):
            return None
        missing = [name for name in ("tile_size", "overlap") if tiling.get(name) is None]
        if missing:
            raise InputError(
                f"{source} enables tiling without {' or '.join(missing)}; sleap-nn writes them back at training: "
                "use the training_config.yaml of the trained run."
            )
        # Unset (null) knobs take sleap-nn's defaults, which are this class's.
        values = {name: tiling.get(name) for name in attrs.fields_dict(cls) if tiling.get(name) is not None}
        try:
            return cls(**values)
        except (TypeError, ValueError) as err:
            raise InputError(f"{source}: tiling {err}; fix data_config.preprocessing.tiling.") from None
