"""Forward prediction for live poses: where each keypoint will be a little later.

A live pose describes the frame as it was at capture; by the time a hook acts on
it, the animal has moved on for the capture-to-pose latency (plus whatever the
actuator adds). A forecaster follows each animal by a key (the single instance,
or a multi-class model's identity) and extrapolates every keypoint to a later
time. Both forecasters take ``(nodes, 2)`` points in pixels and times in
nanoseconds (`time.perf_counter_ns`); a node missing from the current frame is
NaN in the forecast too (nothing is invented for an undetected point).
"""

from __future__ import annotations

import abc
from typing import Hashable

import numpy as np

NS_PER_S = 1e9


class Forecaster(abc.ABC):
    """Follows keypoints per key; `forecast` takes this frame's points and extrapolates them."""

    @abc.abstractmethod
    def forecast(self, key: Hashable, points: np.ndarray, measured_ns: int, at_ns: int) -> np.ndarray:
        """``(nodes, 2)`` points measured at ``measured_ns`` -> where they will be at ``at_ns``."""

    def reset(self) -> None:
        """Forget every animal followed so far."""


class ConstantVelocity(Forecaster):
    """Each keypoint keeps the velocity between its last two measurements (exact for linear motion)."""

    def __init__(self):
        # key -> (time of each node's last measurement in ns, its last position); NaN = never seen.
        self._last: dict[Hashable, tuple[np.ndarray, np.ndarray]] = {}

    def forecast(self, key, points, measured_ns, at_ns):
        points = np.asarray(points, np.float64)
        seen = ~np.isnan(points).any(axis=-1)
        last_ns, last_points = self._last.get(key, (np.full(len(points), np.nan), np.full_like(points, np.nan)))
        elapsed_s = (measured_ns - last_ns) / NS_PER_S
        with np.errstate(invalid="ignore", divide="ignore"):
            velocity = (points - last_points) / elapsed_s[:, None]
        # A node seen for the first time (or twice at the same instant) has no velocity yet.
        velocity[~np.isfinite(velocity).all(axis=-1)] = 0.0
        ahead_s = (at_ns - measured_ns) / NS_PER_S
        self._last[key] = (np.where(seen, measured_ns, last_ns), np.where(seen[:, None], points, last_points))
        return (points + velocity * ahead_s).astype(np.float32)

    def reset(self):
        self._last.clear()


class Kalman(Forecaster):
    """A constant-velocity Kalman filter per keypoint coordinate (position and velocity).

    ``measurement_sd_px``: how far a detected keypoint strays from the true one
    (peak refinement noise); ``acceleration_sd_px_s2``: how hard the animal may
    change speed (white-noise acceleration). More measurement noise or less
    acceleration smooths more and reacts later.
    """

    def __init__(self, measurement_sd_px: float = 1.0, acceleration_sd_px_s2: float = 2000.0,
                 initial_speed_sd_px_s: float = 1000.0):
        self.measurement_var = float(measurement_sd_px) ** 2
        self.acceleration_var = float(acceleration_sd_px_s2) ** 2
        self.initial_velocity_var = float(initial_speed_sd_px_s) ** 2
        # key -> (last update time per node in ns, state (nodes, 2 coords, [position, velocity]),
        # covariance (nodes, 2, 2): x and y share it, as they share their measurements).
        self._filters: dict[Hashable, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def _new(self, n_nodes: int):
        covariance = np.zeros((n_nodes, 2, 2))
        covariance[:, 0, 0] = self.measurement_var
        covariance[:, 1, 1] = self.initial_velocity_var
        return np.full(n_nodes, np.nan), np.zeros((n_nodes, 2, 2)), covariance

    def forecast(self, key, points, measured_ns, at_ns):
        points = np.asarray(points, np.float64)
        seen = ~np.isnan(points).any(axis=-1)
        last_ns, state, covariance = self._filters.get(key) or self._new(len(points))
        started = ~np.isnan(last_ns)
        dt = np.where(started, (measured_ns - last_ns) / NS_PER_S, 0.0)
        # Predict every started node to now: x += v dt; P = F P F' + Q (white-noise acceleration).
        state = state.copy()
        state[..., 0] += state[..., 1] * dt[:, None]
        transition = np.zeros((len(points), 2, 2))
        transition[:, 0, 0] = transition[:, 1, 1] = 1.0
        transition[:, 0, 1] = dt
        noise = self.acceleration_var * np.stack(
            [np.stack([dt**4 / 4, dt**3 / 2], -1), np.stack([dt**3 / 2, dt**2], -1)], -2
        )
        covariance = transition @ covariance @ transition.transpose(0, 2, 1) + noise
        # Update the seen nodes with their measured positions.
        gain = covariance[:, :, 0] / (covariance[:, 0, 0] + self.measurement_var)[:, None]  # (nodes, 2)
        fresh = seen & ~started
        update = seen & started
        residual = np.where(update[:, None], points - state[..., 0], 0.0)
        state[update] += residual[update][:, :, None] * gain[update][:, None, :]
        covariance[update] -= gain[update][:, :, None] * covariance[update][:, 0, None, :]
        # A node seen for the first time starts at its measurement, at rest, unsure of its speed.
        state[fresh, :, 0] = points[fresh]
        state[fresh, :, 1] = 0.0
        covariance[fresh] = self._new(int(fresh.sum()))[2]
        # Every started node was predicted to now; unseen ones coast on.
        self._filters[key] = (np.where(seen | started, float(measured_ns), np.nan), state, covariance)
        ahead_s = (at_ns - measured_ns) / NS_PER_S
        forecast = state[..., 0] + state[..., 1] * ahead_s
        forecast[~seen] = np.nan
        return forecast.astype(np.float32)

    def reset(self):
        self._filters.clear()


FORECASTERS = {"velocity": ConstantVelocity, "kalman": Kalman}
