"""`python -m pipelines` is the `guetteur` command."""

import sys

from pipelines.cli import main

sys.exit(main())
