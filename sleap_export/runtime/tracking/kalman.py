"""Constant-velocity Kalman filters over boxes for the MOT trackers (numpy/SciPy only).

A filter holds no track state: each track keeps its own ``(mean, cov)``. Boxes go in and
out as ``xyxy``; sides are floored at 1 px. Two parameterizations, as sleap-nn's SORT and
ByteTrack (animal preset) use them:

- `XYSRFilter` (SORT): measurement ``[cx, cy, area, w/h]``, 7-D state, fixed noise.
- `XYWHFilter` (ByteTrack): measurement ``[cx, cy, w, h]``, 8-D state, noise in proportion
  to the box's width and height.

The covariance update is the Joseph form, which stays positive semi-definite under rounding.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve

MIN_SIDE = 1.0
MIN_ASPECT = 1e-6
# Noise standard deviations as fractions of the box size (XYWH).
POSITION_FRACTION = 1.0 / 20
VELOCITY_FRACTION = 1.0 / 160


def _symmetric(a: np.ndarray) -> np.ndarray:
    return 0.5 * (a + np.swapaxes(a, -1, -2))


def centers_and_sizes(xyxy: np.ndarray) -> np.ndarray:
    """``[cx, cy, w, h]`` of ``(..., 4)`` boxes, sides at least 1 px."""
    b = np.asarray(xyxy, dtype=np.float64)
    return np.stack(
        [
            0.5 * (b[..., 0] + b[..., 2]),
            0.5 * (b[..., 1] + b[..., 3]),
            np.maximum(b[..., 2] - b[..., 0], MIN_SIDE),
            np.maximum(b[..., 3] - b[..., 1], MIN_SIDE),
        ],
        axis=-1,
    )


def corners(cx, cy, w, h) -> np.ndarray:
    return np.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=-1)


def _solve_positive_definite(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a^-1 b`` by Cholesky; a matrix that is numerically not positive definite gets a
    growing diagonal jitter, then the pseudo-inverse, so finite input stays finite."""
    a = _symmetric(a)
    scale = max(float(np.max(np.abs(np.diag(a)))), 1e-12)
    for attempt in range(5):
        jitter = 0.0 if attempt == 0 else scale * 10.0 ** (-12 + 3 * (attempt - 1))
        try:
            return cho_solve(cho_factor(a + jitter * np.eye(len(a)), lower=True), b)
        except np.linalg.LinAlgError:
            continue
    return np.linalg.pinv(a) @ b


class BoxKalmanFilter:
    """The shared constant-velocity model: the first four state entries are measured, and
    each velocity is added to its position once per step."""

    ndim: int
    velocity_pairs: tuple[tuple[int, int], ...]
    # (size, its velocity): the velocity is zeroed before a step that would make the size <= 0.
    size_velocity_pairs: tuple[tuple[int, int], ...]

    def __init__(self):
        self.motion = np.eye(self.ndim)
        for position, velocity in self.velocity_pairs:
            self.motion[position, velocity] = 1.0

    def measure(self, xyxy: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def boxes(self, means: np.ndarray) -> np.ndarray:
        """``xyxy`` boxes of state means."""
        raise NotImplementedError

    def initial_variance(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def process_variance(self, means: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def measurement_variance(self, mean: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def initiate(self, xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = self.measure(np.asarray(xyxy, dtype=np.float64).reshape(4))
        mean = np.zeros(self.ndim)
        mean[:4] = z
        return mean, np.diag(self.initial_variance(z))

    def predict(self, means: np.ndarray, covs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One step of ``(n, ndim)`` means and ``(n, ndim, ndim)`` covariances."""
        means = np.array(means, dtype=np.float64)
        for size, velocity in self.size_velocity_pairs:
            means[means[:, size] + means[:, velocity] <= 0, velocity] = 0.0
        noise = self.process_variance(means)  # from the state before the step
        means = means @ self.motion.T
        covs = np.einsum("ij,njk,lk->nil", self.motion, covs, self.motion)
        diagonal = np.arange(self.ndim)
        covs[:, diagonal, diagonal] += noise
        return means, _symmetric(covs)

    def update(self, mean: np.ndarray, cov: np.ndarray, xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = self.measure(np.asarray(xyxy, dtype=np.float64).reshape(4))
        if not np.isfinite(z).all():
            return mean, cov
        noise = self.measurement_variance(mean)
        innovation_cov = _symmetric(cov[:4, :4] + np.diag(noise))
        gain = _solve_positive_definite(innovation_cov, cov[:4, :]).T
        new_mean = mean + gain @ (z - mean[:4])
        keep = np.eye(self.ndim)
        keep[:, :4] -= gain
        new_cov = _symmetric(keep @ cov @ keep.T + (gain * noise) @ gain.T)
        if not (np.isfinite(new_mean).all() and np.isfinite(new_cov).all()):
            return mean, cov
        return new_mean, new_cov


class XYSRFilter(BoxKalmanFilter):
    """SORT's filter: state ``[cx, cy, area, w/h, vx, vy, v_area]`` with SORT's fixed noise."""

    ndim = 7
    velocity_pairs = ((0, 4), (1, 5), (2, 6))
    size_velocity_pairs = ((2, 6),)
    INITIAL = np.array([10.0, 10.0, 10.0, 10.0, 1e4, 1e4, 1e4])
    PROCESS = np.array([1.0, 1.0, 1.0, 1.0, 1e-2, 1e-2, 1e-4])
    MEASUREMENT = np.array([1.0, 1.0, 10.0, 10.0])

    def measure(self, xyxy):
        cx, cy, w, h = np.moveaxis(centers_and_sizes(xyxy), -1, 0)
        return np.stack([cx, cy, w * h, w / h], axis=-1)

    def boxes(self, means):
        m = np.asarray(means, dtype=np.float64)
        area = np.maximum(m[..., 2], MIN_SIDE)
        aspect = np.maximum(m[..., 3], MIN_ASPECT)
        w = np.maximum(np.sqrt(area * aspect), MIN_SIDE)
        h = np.maximum(np.sqrt(area / aspect), MIN_SIDE)
        return corners(m[..., 0], m[..., 1], w, h)

    def initial_variance(self, z):
        return self.INITIAL.copy()

    def process_variance(self, means):
        return np.broadcast_to(self.PROCESS, (len(means), self.ndim))

    def measurement_variance(self, mean):
        return self.MEASUREMENT.copy()


class XYWHFilter(BoxKalmanFilter):
    """ByteTrack's (animal preset): state ``[cx, cy, w, h]`` and their velocities; noise
    standard deviations 1/20 (positions) and 1/160 (velocities) of the width or height."""

    ndim = 8
    velocity_pairs = ((0, 4), (1, 5), (2, 6), (3, 7))
    size_velocity_pairs = ((2, 6), (3, 7))

    def measure(self, xyxy):
        return centers_and_sizes(xyxy)

    def boxes(self, means):
        m = np.asarray(means, dtype=np.float64)
        return corners(m[..., 0], m[..., 1], np.maximum(m[..., 2], MIN_SIDE), np.maximum(m[..., 3], MIN_SIDE))

    def initial_variance(self, z):
        w, h = max(z[2], MIN_SIDE), max(z[3], MIN_SIDE)
        p, v = 2 * POSITION_FRACTION, 10 * VELOCITY_FRACTION
        return np.square([p * w, p * h, p * w, p * h, v * w, v * h, v * w, v * h])

    def process_variance(self, means):
        w = np.maximum(means[:, 2], MIN_SIDE)
        h = np.maximum(means[:, 3], MIN_SIDE)
        sizes = np.stack([w, h, w, h], axis=1)
        return np.square(np.concatenate([POSITION_FRACTION * sizes, VELOCITY_FRACTION * sizes], axis=1))

    def measurement_variance(self, mean):
        w, h = max(mean[2], MIN_SIDE), max(mean[3], MIN_SIDE)
        return np.square(POSITION_FRACTION * np.array([w, h, w, h]))
