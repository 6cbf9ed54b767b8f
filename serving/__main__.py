"""`python -m serving --model-uri URI --model-name NAME --port PORT`"""

import os
import sys

# One OpenMP thread per model call (set before numpy and scikit-learn load): the batches are small,
# and spinning OpenMP threads compete with the event loop for the cores. OMP_NUM_THREADS overrides.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from serving.server import main  # noqa: E402

sys.exit(main())
