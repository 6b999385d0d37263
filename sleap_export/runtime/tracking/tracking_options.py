"""`TrackingOptions`: every setting of the classic tracker, with sleap-nn's names and defaults."""

from __future__ import annotations

from typing import Optional

import attrs

from sleap_export.core.errors import InputError

CANDIDATES_METHODS = ("fixed_window", "local_queues")
FEATURES = ("keypoints", "centroids", "bboxes")
SCORING_METHODS = ("oks", "iou", "euclidean_dist")
SCORING_REDUCTIONS = ("mean", "max", "robust_quantile")
MATCHING_METHODS = ("hungarian", "greedy")


def _flag(name: str) -> str:
    """The option's name as sleap-nn predict spells it (which our CLI accepts too)."""
    return "--tracking_window_size" if name == "window_size" else f"--{name}"


def _one_of(choices: tuple[str, ...]):
    def check(instance, attribute, value) -> None:
        if value is not None and value not in choices:
            raise InputError(f"{_flag(attribute.name)} {value!r} is not one of {', '.join(choices)}; pass one of them.")

    return check


def _at_least(minimum: float, optional: bool = False):
    def check(instance, attribute, value) -> None:
        if value is None and optional:
            return
        if value is None or value < minimum:
            raise InputError(f"{_flag(attribute.name)} must be at least {minimum}, got {value}; pass a larger value.")

    return check


@attrs.frozen
class TrackingOptions:
    """sleap-nn's classic tracker settings (`sleap-nn predict --tracking ...`), validated once.

    ``features`` and ``scoring_method`` left at None take sleap-nn's defaults for the skeleton:
    keypoints + oks, or centroids + euclidean_dist for a one-node skeleton (`resolved`).
    """

    window_size: int = attrs.field(default=5, validator=_at_least(1))
    min_new_track_points: int = attrs.field(default=0, validator=_at_least(0))
    candidates_method: str = attrs.field(default="fixed_window", validator=_one_of(CANDIDATES_METHODS))
    min_match_points: int = attrs.field(default=0, validator=_at_least(0))
    features: Optional[str] = attrs.field(default=None, validator=_one_of(FEATURES))
    scoring_method: Optional[str] = attrs.field(default=None, validator=_one_of(SCORING_METHODS))
    scoring_reduction: str = attrs.field(default="mean", validator=_one_of(SCORING_REDUCTIONS))
    robust_best_instance: float = 1.0
    oks_stddev: float = attrs.field(default=0.025, validator=_at_least(1e-12))
    track_matching_method: str = attrs.field(default="hungarian", validator=_one_of(MATCHING_METHODS))
    max_tracks: Optional[int] = attrs.field(default=None, validator=_at_least(1, optional=True))
    use_flow: bool = False
    of_img_scale: float = attrs.field(default=1.0, validator=_at_least(1e-6))
    of_window_size: int = attrs.field(default=21, validator=_at_least(3))
    of_max_levels: int = attrs.field(default=3, validator=_at_least(0))
    tracking_target_instance_count: Optional[int] = attrs.field(default=None, validator=_at_least(0, optional=True))
    tracking_pre_cull_to_target: int = 0
    tracking_pre_cull_iou_threshold: float = 0.0
    tracking_clean_instance_count: int = attrs.field(default=0, validator=_at_least(0))
    tracking_clean_iou_threshold: float = 0.0
    post_connect_single_breaks: bool = False

    def __attrs_post_init__(self):
        if not 0 < self.robust_best_instance <= 1:
            raise InputError(
                f"--robust_best_instance must be in (0, 1], got {self.robust_best_instance}; 1 takes the best score, 0.95 a robust one."
            )
        if self.post_connect_single_breaks and not self.tracking_target_instance_count:
            count = self.max_tracks or "N"
            raise InputError(
                f"--post_connect_single_breaks needs --tracking_target_instance_count; add --tracking_target_instance_count {count}."
            )

    @property
    def uses_local_queues(self) -> bool:
        """sleap-nn switches fixed_window to local_queues when max_tracks is set, so the cap holds."""
        return self.candidates_method == "local_queues" or self.max_tracks is not None

    @property
    def pre_culls(self) -> bool:
        return bool(self.tracking_target_instance_count) and bool(self.tracking_pre_cull_to_target)

    def resolved(self, n_nodes: int) -> "TrackingOptions":
        """Features and scoring as sleap-nn picks them for an ``n_nodes`` skeleton."""
        single = n_nodes == 1
        return attrs.evolve(
            self,
            features=self.features or ("centroids" if single else "keypoints"),
            scoring_method=self.scoring_method or ("euclidean_dist" if single else "oks"),
        )
