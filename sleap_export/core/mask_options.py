"""`MaskOptions`: the predict-time settings of sleap-nn's segmentation models, by the names and
with the defaults of ``sleap-nn predict`` (0.3.5).

None of them changes what the exported graph computes: the graph stops at the foreground mask,
the instance-center candidates and the maps they are voted with (its own settings, the
thresholds and the center window, are `spec.PostprocessSpec`'s). Which model reads which:

* bottom-up segmentation: all of them;
* semantic segmentation: ``min_mask_area``, ``full_res_masks``, ``mask_output``, ``polygon_epsilon``;
* top-down segmentation: ``mask_output`` and ``polygon_epsilon`` only (sleap-nn places its crop
  masks without an area floor or full-resolution option; its cap on instances is the centroid
  stage's, in the graph).
"""

from __future__ import annotations

from typing import Optional

import attrs

from sleap_export.core.errors import InputError
from sleap_export.core.spec import one_of, within

MERGE_METHODS = ("greedy", "multicut")
MASK_OUTPUTS = ("mask", "polygon", "both")


def _as_input_error(check):
    """A spec validator whose one-line ValueError reaches the user as an InputError (exit status 2)."""

    def checked(instance, attribute, value) -> None:
        try:
            check(instance, attribute, value)
        except ValueError as err:
            raise InputError(f"--{err}") from None

    return checked


def _thresholds(value) -> tuple[float, ...]:
    """sleap-nn's --merge_thresholds: comma-separated floats ("0.85,0.6,0.4"), or a sequence of them."""
    items = value.split(",") if isinstance(value, str) else value
    try:
        return tuple(float(item) for item in items if str(item).strip())
    except ValueError:
        raise InputError(f"--merge-thresholds must be comma-separated numbers, got {value!r}") from None


def _affinities(instance, attribute, value) -> None:
    outside = [t for t in value if not 0.0 <= t <= 1.0]
    if outside:
        raise InputError(f"--merge-thresholds are affinities in [0, 1], got {', '.join(f'{t:g}' for t in outside)}")


@attrs.frozen
class MaskOptions:
    """How masks are decoded and written (sleap-nn's ``predict`` options of the same names)."""

    # Drop masks smaller than this many frame pixels (0: only empty masks are dropped).
    min_mask_area: int = attrs.field(default=0, validator=_as_input_error(within(0)))
    # Bottom-up: keep only this many strongest instance centers per frame (None: all).
    max_instances: Optional[int] = attrs.field(default=None, validator=_as_input_error(within(1)))
    # Bottom-up: keep each mask's largest connected part and fill its holes; with a radius, an
    # elliptical open then close (output-stride pixels) first.
    mask_cleanup: bool = False
    mask_cleanup_radius: int = attrs.field(default=0, validator=_as_input_error(within(0)))
    # Bottom-up: drop pixels voting farther than alpha * sqrt(area / pi) from their center (None: off).
    distance_gate_alpha: Optional[float] = attrs.field(default=None, validator=_as_input_error(within(0.0)))
    # Bottom-up: re-join fragments of one animal (region adjacency graph, greedy or multicut).
    merge_fragments: bool = False
    merge_method: str = attrs.field(default="greedy", validator=_as_input_error(one_of(*MERGE_METHODS)))
    merge_thresholds: tuple[float, ...] = attrs.field(
        default=(0.85, 0.6, 0.4), converter=_thresholds, validator=_affinities
    )
    merge_w_valley: float = attrs.field(default=1.0, validator=_as_input_error(within(0.0)))
    merge_w_offset: float = attrs.field(default=0.25, validator=_as_input_error(within(0.0)))
    # Dilations of the merge's contact test; sleap-nn counts 0 as 1.
    merge_dilate: int = attrs.field(default=1, validator=_as_input_error(within(0)))
    # Masks at the frame's resolution instead of the heads' output stride (a scale on the mask).
    full_res_masks: bool = False
    mask_output: str = attrs.field(default="mask", validator=_as_input_error(one_of(*MASK_OUTPUTS)))
    # Polygons' Douglas-Peucker tolerance, a fraction of each part's perimeter (0: exact outlines).
    polygon_epsilon: float = attrs.field(default=0.01, validator=_as_input_error(within(0.0)))

    @property
    def writes_masks(self) -> bool:
        return self.mask_output in ("mask", "both")

    @property
    def writes_polygons(self) -> bool:
        return self.mask_output in ("polygon", "both")


def settings_read_by(model_type: str) -> tuple[str, ...]:
    """The `MaskOptions` fields a segmentation model type reads (sleap-nn's layers read no others)."""
    placing = ("mask_output", "polygon_epsilon")
    if model_type == "topdown_segmentation":
        return placing
    if model_type == "semantic_segmentation":
        return ("min_mask_area", "full_res_masks", *placing)
    return tuple(f.name for f in attrs.fields(MaskOptions))
