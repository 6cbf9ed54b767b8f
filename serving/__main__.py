"""`python -m serving --model-uri URI --model-name NAME --port PORT`"""

import sys

from serving.server import main

sys.exit(main())
