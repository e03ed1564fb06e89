"""Random training crops from the real corpus, with the codec's own normalisation."""
from __future__ import annotations

import numpy as np

from ..pipeline import pad_field


class CropSampler:
    """Draws normalised (B, 1, h, w) crops from a list of (N, lat, lon) field arrays.

    Each crop is rolled by a random longitude (the globe has no preferred meridian),
    randomly flipped north-south, cut to ``crop`` (fields smaller than the crop are
    padded as the codec pads them), and normalised by its own mean and standard
    deviation -- exactly what the codec does to each field it compresses, missing
    values (NaN) included: they become the mean.

    ``weights`` gives each array's share of the draws. ``periodic`` (default: all)
    says which arrays circle the globe: only those are rolled in longitude; a regional
    field is cut at a random offset instead, since rolling it would join its east and
    west edges into a seam that is not in the data.
    """

    def __init__(self, arrays, weights, crop=(64, 128), seed=0, periodic=None):
        self.arrays = arrays
        self.periodic = [True] * len(arrays) if periodic is None else list(periodic)
        w = np.asarray(weights, dtype=np.float64)
        self.p = w / w.sum()
        self.crop = crop
        self.rng = np.random.default_rng(seed)

    def field(self) -> np.ndarray:
        while True:  # a field with no value at all (a missing time step) is drawn again
            crop = self._draw()
            valid = np.isfinite(crop)
            if valid.any():
                break
        # normalised over its values; NaN points (missing data) become 0, the field's
        # mean, exactly as the codec hands them to the network
        std = crop[valid].std()
        x = (crop - crop[valid].mean()) / (std if std > 0 else 1)
        return np.where(valid, x, 0.0).astype(np.float32)

    def _draw(self) -> np.ndarray:
        k = self.rng.choice(len(self.arrays), p=self.p)
        x = self.arrays[k][self.rng.integers(len(self.arrays[k]))]
        if self.periodic[k]:
            x = np.roll(x, self.rng.integers(x.shape[1]), axis=1)
        if self.rng.random() < 0.5:
            x = x[::-1]
        h, w = self.crop
        if x.shape[0] < h or x.shape[1] < w:
            x = pad_field(x, max(h, x.shape[0]), max(w, x.shape[1]))
        i = self.rng.integers(x.shape[0] - h + 1)
        j = 0 if self.periodic[k] else self.rng.integers(x.shape[1] - w + 1)
        return x[i:i + h, j:j + w]

    def batch(self, size: int) -> np.ndarray:
        return np.stack([self.field() for _ in range(size)])[:, None]
