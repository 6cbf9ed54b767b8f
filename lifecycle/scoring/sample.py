"""A uniform sample of rows from a stream of chunks, in memory bounded by the sample's size."""

from __future__ import annotations

import numpy as np
import pandas as pd


class UniformSample:
    """At most `size` rows drawn uniformly without replacement from every row `add`ed.

    Each row gets a random key and the rows with the `size` smallest keys are kept (a bottom-k
    sample): every subset of `size` rows is equally likely whatever the chunk sizes, and memory
    holds at most `size` rows plus one chunk. Rows may come as several aligned frames (inputs and
    their predictions), which are sampled together and come back apart.
    """

    def __init__(self, size: int, seed: int = 0):
        if size < 1:
            raise ValueError(f"a sample needs at least 1 row, not {size}")
        self.size = size
        self._rng = np.random.default_rng(seed)
        self._keys = np.empty(0)
        self._kept: list[pd.DataFrame] = []

    def add(self, *frames: pd.DataFrame) -> None:
        frames = [frame.reset_index(drop=True) for frame in frames]
        keys = np.concatenate([self._keys, self._rng.random(len(frames[0]))])
        if self._kept:
            both = [pd.concat([kept, new], ignore_index=True) for kept, new in zip(self._kept, frames, strict=True)]
        else:
            both = frames
        if len(keys) > self.size:
            keep = np.sort(np.argpartition(keys, self.size - 1)[: self.size])
            keys, both = keys[keep], [frame.take(keep).reset_index(drop=True) for frame in both]
        self._keys, self._kept = keys, both

    def frames(self) -> list[pd.DataFrame]:
        """The sampled rows of each frame, aligned with one another."""
        return self._kept
