"""Writes the e2e smoke requests: one real Ames row, every model input column, no target.

    python scripts/e2e-requests.py            # writes serving/examples/ames-v1.json and ames-v2.json
    python scripts/e2e-requests.py --check    # fails if the committed files differ from a fresh build

The row goes through `process_frame`, so its values have the types the model's signature was
inferred from (float64 numbers, strings, null for missing).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "ames.yaml"
EXAMPLES = ROOT / "serving" / "examples"


def request_frame(config_path: Path = CONFIG):
    """The first processed row with no missing value, as a one-row frame in the config's column order.

    A complete row keeps the smoke request independent of which columns the signature marks optional.
    """
    import pandas as pd

    from lifecycle.dataset.config import load_config
    from lifecycle.dataset.process import process_frame
    from lifecycle.modelling.features import features_and_target

    config = load_config(config_path)
    features, _ = features_and_target(process_frame(pd.read_csv(ROOT / config.data_uri), config), config)
    complete = features.dropna()
    if complete.empty:
        raise ValueError(f"{config.data_uri}: every row has a missing value; no complete row to send")
    return complete.iloc[[0]].reset_index(drop=True)


def rendered(config_path: Path = CONFIG) -> dict[str, str]:
    """Each request file's text: V1 with one object per row, V2 with one tensor per column
    (lifecycle.contract.protocol: float64 numbers as FP64, text as BYTES)."""
    from lifecycle.contract.protocol import v1_request, v2_request

    frame = request_frame(config_path)
    return {
        "ames-v1.json": json.dumps(v1_request(frame), indent=1) + "\n",
        "ames-v2.json": json.dumps(v2_request(frame), indent=1) + "\n",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the committed files instead of writing")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    stale = []
    for name, text in rendered().items():
        path = EXAMPLES / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print(f"stale request files (run python scripts/e2e-requests.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
