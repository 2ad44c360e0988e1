"""``python -m cbir.cli``: the same as the ``cbir`` command."""

import sys

from cbir.cli.program import main

sys.exit(main())
