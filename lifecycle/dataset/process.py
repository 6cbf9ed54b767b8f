"""Deterministic cleaning of a validated table, as its config says."""

from __future__ import annotations

import pandas as pd

from lifecycle.dataset.config import DatasetConfig


def process_frame(frame: pd.DataFrame, config: DatasetConfig) -> pd.DataFrame:
    """Keeps the configured columns with deliberate dtypes, clips, drops duplicates.

    Dtypes are fixed here (float for numbers, object strings for categories) so the model's
    signature does not depend on which rows happened to hold a NaN.
    """
    keep = [name for name in config.columns if name in frame] + [config.target.name]
    out = frame.loc[:, keep].copy()
    for name, spec in config.columns.items():
        if name not in out:
            continue
        if spec.type == "numeric":
            out[name] = pd.to_numeric(out[name]).astype("float64")
        else:
            out[name] = out[name].astype("string").astype(object).where(out[name].notna(), None)
    for name, (low, high) in config.processing.clip.items():
        if name in out:
            out[name] = out[name].clip(lower=low, upper=high)
    if config.task == "classification":
        out[config.target.name] = out[config.target.name].astype(str)
    else:
        out[config.target.name] = pd.to_numeric(out[config.target.name]).astype("float64")
    if config.processing.drop_duplicates:
        out = out.drop_duplicates()
    return out.reset_index(drop=True)


def split_frame(frame: pd.DataFrame, config: DatasetConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded train/test split, stratified on the label for classification."""
    from sklearn.model_selection import train_test_split

    stratify = frame[config.target.name] if config.task == "classification" else None
    train, test = train_test_split(
        frame, test_size=config.split.test_size, random_state=config.split.seed, stratify=stratify
    )
    return train.reset_index(drop=True), test.reset_index(drop=True)
