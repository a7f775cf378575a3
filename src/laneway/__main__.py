"""``python -m laneway``: the same as the ``laneway`` command."""

import sys

from laneway.cli import main

sys.exit(main())
