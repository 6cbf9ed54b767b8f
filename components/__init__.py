"""KFP components: thin wrappers that move artifacts in and out of the plain functions in `lifecycle`.

Every component runs in the one project image. The image is chosen here, once, from the
environment at import time, so `compile.py --image` (which sets it before importing the pipelines)
decides the tag for every task.
"""

import functools
import os

from kfp import dsl

DEFAULT_COMPONENT_IMAGE = "ghcr.io/kfp-tabular-lifecycle/components:0.1.0"
COMPONENT_IMAGE = os.environ.get("COMPONENT_IMAGE", DEFAULT_COMPONENT_IMAGE)

# The image already holds the project and kfp, so nothing is pip-installed when a task starts.
project_component = functools.partial(dsl.component, base_image=COMPONENT_IMAGE, install_kfp_package=False)
