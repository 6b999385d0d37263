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
TRACKERS = ("classic", "sort", "bytetrack")
# sleap-nn's other MOT trackers (appearance re-ID, OC-SORT's momentum), not implemented here.
OTHER_SLEAP_NN_TRACKERS = ("deepsort", "strongsort", "botsort", "ocsort", "deepocsort")
OVERLAP_METHODS = ("iou", "oks")
KALMAN_TRACK_FEATURES = ("centroid", "keypoints")
# Options only the MOT trackers read (None: the tracker's preset).
MOT_ONLY = ("track_buffer", "min_hits", "track_high_threshold", "track_low_threshold", "new_track_threshold", "min_match_similarity")
# Options only the classic tracker reads, each with its default.
CLASSIC_ONLY = {
    "window_size": 5, "min_new_track_points": 0, "candidates_method": "fixed_window", "min_match_points": 0,
    "scoring_reduction": "mean", "robust_best_instance": 1.0, "track_matching_method": "hungarian",
    "use_flow": False, "of_img_scale": 1.0, "of_window_size": 21, "of_max_levels": 3,
    "use_kalman": False, "kf_track_features": "centroid", "kf_init_frame_count": 10, "kf_node_indices": None,
    "kf_reset_gap_size": 5,
    "tracking_target_instance_count": None, "tracking_pre_cull_to_target": 0, "tracking_pre_cull_iou_threshold": 0.0,
    "tracking_clean_instance_count": 0, "tracking_clean_iou_threshold": 0.0, "post_connect_single_breaks": False,
}
CLASSIC_OKS_STDDEV = 0.025
# sleap-nn's default for --kf_track_features keypoints, whose per-node predictions are noisier.
KALMAN_KEYPOINTS_OKS_STDDEV = 0.1


def _flag(name: str) -> str:
    """The option's name as sleap-nn predict spells it (which our CLI accepts too)."""
    return "--tracking_window_size" if name == "window_size" else f"--{name}"


def _one_of(choices: tuple[str, ...]):
    def check(instance, attribute, value) -> None:
        if value is not None and value not in choices:
            raise InputError(f"{_flag(attribute.name)} {value!r} is not one of {', '.join(choices)}; pass one of them.")

    return check


def _unit(instance, attribute, value) -> None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise InputError(f"{_flag(attribute.name)} must be in [0, 1], got {value}; pass a similarity or score in [0, 1].")


def _node_indices(value) -> Optional[tuple[int, ...]]:
    """sleap-nn's --kf_node_indices: comma-separated integers ("0,1,2"), or a list of them; empty: all nodes."""
    if value is None or isinstance(value, str) and not value.strip():
        return None
    items = value.split(",") if isinstance(value, str) else value
    try:
        return tuple(int(item) for item in items if not isinstance(item, str) or item.strip())
    except ValueError:
        raise InputError(f"--kf_node_indices {value!r} is not a comma-separated list of integers; pass e.g. 0,1,2.") from None


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
    oks_stddev: Optional[float] = attrs.field(default=None, validator=_at_least(1e-12, optional=True))
    track_matching_method: str = attrs.field(default="hungarian", validator=_one_of(MATCHING_METHODS))
    max_tracks: Optional[int] = attrs.field(default=None, validator=_at_least(1, optional=True))
    use_flow: bool = False
    of_img_scale: float = attrs.field(default=1.0, validator=_at_least(1e-6))
    of_window_size: int = attrs.field(default=21, validator=_at_least(3))
    of_max_levels: int = attrs.field(default=3, validator=_at_least(0))
    use_kalman: bool = False
    kf_track_features: str = attrs.field(default="centroid", validator=_one_of(KALMAN_TRACK_FEATURES))
    kf_init_frame_count: int = attrs.field(default=10, validator=_at_least(1))
    kf_node_indices: Optional[tuple[int, ...]] = attrs.field(default=None, converter=_node_indices)
    kf_reset_gap_size: int = attrs.field(default=5, validator=_at_least(0))
    tracking_target_instance_count: Optional[int] = attrs.field(default=None, validator=_at_least(0, optional=True))
    tracking_pre_cull_to_target: int = 0
    tracking_pre_cull_iou_threshold: float = 0.0
    tracking_clean_instance_count: int = attrs.field(default=0, validator=_at_least(0))
    tracking_clean_iou_threshold: float = 0.0
    post_connect_single_breaks: bool = False
    tracker: str = "classic"
    track_buffer: Optional[int] = attrs.field(default=None, validator=_at_least(0, optional=True))
    min_hits: Optional[int] = attrs.field(default=None, validator=_at_least(1, optional=True))
    track_high_threshold: Optional[float] = attrs.field(default=None, validator=_unit)
    track_low_threshold: Optional[float] = attrs.field(default=None, validator=_unit)
    new_track_threshold: Optional[float] = attrs.field(default=None, validator=_unit)
    min_match_similarity: Optional[float] = attrs.field(default=None, validator=_unit)
    # sleap-nn's pre-tracking filters (its --filter_* options), in the order it applies them.
    filter_min_visible_nodes: int = attrs.field(default=0, validator=_at_least(0))
    filter_min_visible_node_fraction: float = attrs.field(default=0.0, validator=_unit)
    filter_min_instance_score: float = 0.0
    filter_min_mean_node_score: float = 0.0
    filter_overlapping: bool = False
    filter_overlapping_method: str = attrs.field(default="iou", validator=_one_of(OVERLAP_METHODS))
    filter_overlapping_threshold: float = 0.8

    def __attrs_post_init__(self):
        self._check_tracker_family()
        if not 0 < self.robust_best_instance <= 1:
            raise InputError(
                f"--robust_best_instance must be in (0, 1], got {self.robust_best_instance}; 1 takes the best score, 0.95 a robust one."
            )
        if self.use_kalman and self.use_flow:
            raise InputError("--use_kalman and --use_flow are two motion models and sleap-nn takes one; drop one of them.")
        if self.use_kalman and self.tracking_target_instance_count is None and self.max_tracks is None:
            raise InputError(
                "--use_kalman needs the number of animals, as sleap-nn does; add --tracking_target_instance_count N (or --max_tracks N)."
            )
        if self.post_connect_single_breaks and not self.tracking_target_instance_count:
            count = self.max_tracks or "N"
            raise InputError(
                f"--post_connect_single_breaks needs --tracking_target_instance_count; add --tracking_target_instance_count {count}."
            )

    @property
    def is_mot(self) -> bool:
        return self.tracker != "classic"

    def _check_tracker_family(self) -> None:
        """Options of the other tracker family would be ignored: refused, as sleap-nn refuses them."""
        if self.tracker in OTHER_SLEAP_NN_TRACKERS:
            raise InputError(
                f"--tracker {self.tracker} is not available here (it needs appearance vectors or OC-SORT's motion terms); "
                f"pass --tracker {' / '.join(TRACKERS)}."
            )
        if self.tracker not in TRACKERS:
            raise InputError(f"--tracker {self.tracker!r} is not one of {', '.join(TRACKERS)}; pass one of them.")
        if self.is_mot:
            if self.max_tracks is not None:
                raise InputError(
                    f"--max_tracks with --tracker {self.tracker} runs sleap-nn's identity linking, which is not available "
                    "here; leave --max_tracks out, or use --tracker classic."
                )
            offenders = [_flag(name) for name, default in CLASSIC_ONLY.items() if getattr(self, name) != default]
            if self.features not in (None, "keypoints"):
                offenders.append("--features")
            if offenders:
                raise InputError(
                    f"{', '.join(offenders)} only appl{'ies' if len(offenders) == 1 else 'y'} to --tracker classic, "
                    f"which --tracker {self.tracker} would ignore; leave {'it' if len(offenders) == 1 else 'them'} out."
                )
            if self.oks_stddev is not None and self.scoring_method != "oks":
                raise InputError(
                    f"--oks_stddev only applies to OKS scoring and --tracker {self.tracker} scores by iou here; "
                    "add --scoring_method oks, or leave --oks_stddev out."
                )
            low = self.track_low_threshold
            high = self.track_high_threshold
            if low is not None and high is not None and low > high:
                raise InputError(
                    f"--track_low_threshold {low} is above --track_high_threshold {high}; pass a low threshold at most the high one."
                )
        else:
            given = [_flag(name) for name in MOT_ONLY if getattr(self, name) is not None]
            if given:
                raise InputError(
                    f"{', '.join(given)} only appl{'ies' if len(given) == 1 else 'y'} to the MOT trackers; "
                    "add --tracker sort or --tracker bytetrack, or leave "
                    f"{'it' if len(given) == 1 else 'them'} out."
                )

    @property
    def filters(self) -> bool:
        """Whether any pre-tracking filter is on."""
        return bool(
            self.filter_min_visible_nodes or self.filter_min_visible_node_fraction or self.filter_min_instance_score
            or self.filter_min_mean_node_score or self.filter_overlapping
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
            oks_stddev=self._default_oks_stddev() if self.oks_stddev is None else self.oks_stddev,
        )

    def _default_oks_stddev(self) -> float:
        return KALMAN_KEYPOINTS_OKS_STDDEV if self.use_kalman and self.kf_track_features == "keypoints" else CLASSIC_OKS_STDDEV
