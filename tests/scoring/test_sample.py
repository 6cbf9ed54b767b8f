import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lifecycle.scoring.sample import UniformSample


def test_keeps_every_row_while_there_are_fewer_than_its_size():
    sample = UniformSample(10)
    sample.add(pd.DataFrame({"x": [1, 2, 3]}))
    sample.add(pd.DataFrame({"x": [4]}))
    assert sorted(sample.frames()[0]["x"]) == [1, 2, 3, 4]


def test_is_bounded_and_draws_without_replacement():
    sample = UniformSample(100, seed=1)
    for start in range(0, 10_000, 700):
        sample.add(pd.DataFrame({"x": np.arange(start, min(start + 700, 10_000))}))
    drawn = sample.frames()[0]["x"]
    assert len(drawn) == 100 and drawn.is_unique


def test_every_row_is_equally_likely_whatever_the_chunk_sizes():
    """Rows from a small first chunk and a large last one are kept at the same rate (chi-square)."""
    hits = np.zeros(1000)
    for seed in range(400):
        sample = UniformSample(50, seed=seed)
        for lo, hi in ((0, 10), (10, 600), (600, 1000)):
            sample.add(pd.DataFrame({"x": np.arange(lo, hi)}))
        hits[sample.frames()[0]["x"].to_numpy()] += 1
    by_decile = hits.reshape(10, 100).sum(axis=1)
    assert stats.chisquare(by_decile).pvalue > 0.001


def test_aligned_frames_stay_aligned():
    sample = UniformSample(30, seed=2)
    for start in range(0, 500, 64):
        x = np.arange(start, min(start + 64, 500))
        sample.add(pd.DataFrame({"x": x}), pd.DataFrame({"prediction": x * 10}))
    inputs, predictions = sample.frames()
    assert len(inputs) == 30 and (predictions["prediction"] == inputs["x"] * 10).all()


def test_refuses_an_empty_size():
    with pytest.raises(ValueError, match="at least 1 row"):
        UniformSample(0)
