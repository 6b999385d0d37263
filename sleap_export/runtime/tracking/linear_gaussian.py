"""`LinearGaussianModel`: a Kalman filter with noise covariances learned by EM (numpy/SciPy only),
the arithmetic of pykalman's `KalmanFilter` (which sleap-nn's `--use_kalman` fits per track), so the
same observations give the same states.

Its conventions: an observation row with any NaN is missing (the filter only predicts there, EM
skips it), gains use the pseudo-inverse of the innovation covariance, and the covariance update is
the plain ``P - K H P``; products are grouped as pykalman groups them, so that the numbers (and the
tracking scores computed from them) agree to the last bit. EM here learns only the transition, observation and initial-state
covariances (the matrices and the initial mean stay fixed), each M-step from one smoothing pass.
"""

from __future__ import annotations

from typing import Optional

import attrs
import numpy as np
from scipy import linalg


@attrs.define
class LinearGaussianModel:
    """``x' = F x + w``, ``z = H x + v``; ``w ~ N(0, Q)``, ``v ~ N(0, R)``, ``x0 ~ N(m0, P0)``.
    The covariances start at identity, as pykalman's do."""

    transition: np.ndarray
    observation: np.ndarray
    initial_mean: np.ndarray
    transition_covariance: np.ndarray = None
    observation_covariance: np.ndarray = None
    initial_covariance: np.ndarray = None

    def __attrs_post_init__(self):
        n_state, n_obs = self.transition.shape[0], self.observation.shape[0]
        if self.transition_covariance is None:
            self.transition_covariance = np.eye(n_state)
        if self.observation_covariance is None:
            self.observation_covariance = np.eye(n_obs)
        if self.initial_covariance is None:
            self.initial_covariance = np.eye(n_state)

    def predict(self, mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        F = self.transition
        return F @ mean, F @ (covariance @ F.T) + self.transition_covariance

    def correct(
        self, mean: np.ndarray, covariance: np.ndarray, observation: Optional[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The predicted state corrected by ``observation``; unchanged when it is None or has a NaN."""
        if observation is None or np.isnan(observation).any():
            return mean, covariance
        H = self.observation
        innovation_covariance = H @ (covariance @ H.T) + self.observation_covariance
        gain = covariance @ (H.T @ linalg.pinv(innovation_covariance))
        return mean + gain @ (observation - H @ mean), covariance - gain @ (H @ covariance)

    def step(
        self, mean: np.ndarray, covariance: np.ndarray, observation: Optional[np.ndarray] = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """One frame on: predict, then correct by ``observation`` (None: a frame without one)."""
        return self.correct(*self.predict(mean, covariance), observation)

    def _forward(self, observations: np.ndarray):
        """Predicted and filtered means and covariances of every step (the first prediction is the prior)."""
        n_steps, n_state = len(observations), len(self.initial_mean)
        predicted_means = np.zeros((n_steps, n_state))
        predicted_covariances = np.zeros((n_steps, n_state, n_state))
        filtered_means = np.zeros((n_steps, n_state))
        filtered_covariances = np.zeros((n_steps, n_state, n_state))
        mean, covariance = self.initial_mean, self.initial_covariance
        for t in range(n_steps):
            if t > 0:
                mean, covariance = self.predict(filtered_means[t - 1], filtered_covariances[t - 1])
            predicted_means[t], predicted_covariances[t] = mean, covariance
            filtered_means[t], filtered_covariances[t] = self.correct(mean, covariance, observations[t])
        return predicted_means, predicted_covariances, filtered_means, filtered_covariances

    def filter(self, observations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Filtered means (steps, state) and covariances (steps, state, state) of ``observations``."""
        _, _, means, covariances = self._forward(np.asarray(observations, dtype=np.float64))
        return means, covariances

    def _smoothed(self, observations: np.ndarray):
        """Rauch-Tung-Striebel smoothed means, covariances, and the lag-one cross-covariances
        ``cov(x_t, x_{t-1})`` (index t; the first unused)."""
        predicted_means, predicted_covariances, filtered_means, filtered_covariances = self._forward(observations)
        means, covariances = filtered_means.copy(), filtered_covariances.copy()
        cross = np.zeros_like(covariances)
        F = self.transition
        for t in range(len(observations) - 2, -1, -1):
            gain = filtered_covariances[t] @ (F.T @ linalg.pinv(predicted_covariances[t + 1]))
            means[t] = filtered_means[t] + gain @ (means[t + 1] - predicted_means[t + 1])
            covariances[t] = filtered_covariances[t] + gain @ ((covariances[t + 1] - predicted_covariances[t + 1]) @ gain.T)
            cross[t + 1] = covariances[t + 1] @ gain.T
        return means, covariances, cross

    def fit_noise(self, observations: np.ndarray, iterations: int) -> "LinearGaussianModel":
        """EM: ``iterations`` rounds of smoothing then re-estimating Q, R and P0 (in place)."""
        observations = np.asarray(observations, dtype=np.float64)
        seen = ~np.isnan(observations).any(axis=1)
        F, H = self.transition, self.observation
        for _ in range(iterations):
            means, covariances, cross = self._smoothed(observations)
            residuals = np.zeros_like(self.observation_covariance)
            for t in np.flatnonzero(seen):
                error = observations[t] - H @ means[t]
                residuals += np.outer(error, error) + H @ (covariances[t] @ H.T)
            transition_residuals = np.zeros_like(self.transition_covariance)
            for t in range(len(observations) - 1):
                error = means[t + 1] - F @ means[t]
                lagged = cross[t + 1] @ F.T
                transition_residuals += (
                    np.outer(error, error) + F @ (covariances[t] @ F.T) + covariances[t + 1] - lagged - lagged.T
                )
            if seen.any():
                residuals = (1.0 / seen.sum()) * residuals
            if len(observations) > 1:
                transition_residuals = (1.0 / (len(observations) - 1)) * transition_residuals
            self.observation_covariance = residuals
            self.transition_covariance = transition_residuals
            # E[(x0 - m0)(x0 - m0)^T], expanded term by term as pykalman sums it.
            first, prior = means[0], self.initial_mean
            self.initial_covariance = (
                covariances[0] + np.outer(first, first) - np.outer(prior, first) - np.outer(first, prior) + np.outer(prior, prior)
            )
        return self
