"""Label assignment from responses and the assignment-based classifier (Diehl & Cook 2015).

Each neuron is assigned the class for which its mean response over the labelled
(training) samples is highest; a sample is classified as the class whose assigned neurons
respond most on average. Responses are spike counts; a sample in which no neuron spikes
falls back to each neuron's peak membrane margin ``max_t (V - threshold)`` (the neuron
closest to firing wins), so silent samples are still classified.
"""

from __future__ import annotations

import numpy as np


def response_matrix(counts: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Responses ``[N, n_neurons]``: spike counts, or for all-silent samples a softmax-free
    ranking by peak margin scaled into (0, 1) so it never outranks a real spike."""
    counts = np.asarray(counts, dtype=np.float64)
    silent = counts.sum(1) == 0
    out = counts.copy()
    if silent.any():
        p = peaks[silent]
        lo, hi = p.min(1, keepdims=True), p.max(1, keepdims=True)
        out[silent] = 0.5 * (p - lo) / np.maximum(hi - lo, 1e-12)
    return out


def assign_labels(responses: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Class per neuron (int64 ``[n_neurons]``): arg-max over classes of its mean response."""
    labels = np.asarray(labels)
    means = np.zeros((n_classes, responses.shape[1]))
    for c in range(n_classes):
        mask = labels == c
        if mask.any():
            means[c] = responses[mask].mean(0)
    return means.argmax(0).astype(np.int64)


def classify(responses: np.ndarray, assignments: np.ndarray, n_classes: int) -> np.ndarray:
    """Predicted class per sample (int64 ``[N]``) from the mean response of each class's
    assigned neurons (classes without neurons never win)."""
    scores = np.full((len(responses), n_classes), -np.inf)
    for c in range(n_classes):
        mask = assignments == c
        if mask.any():
            scores[:, c] = responses[:, mask].mean(1)
    return scores.argmax(1).astype(np.int64)
