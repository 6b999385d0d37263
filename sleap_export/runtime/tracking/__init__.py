"""Pose tracking, torch-free: sleap-nn's classic tracker (candidates, scoring, matching, optical-flow
and Kalman shift, culling and break-connecting passes), run online as frames are predicted."""

from sleap_export.runtime.tracking.tracking_options import TrackingOptions

__all__ = ["TrackingOptions"]
