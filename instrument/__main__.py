"""``python -m instrument``: the same as the ``instrument`` command."""

import sys

from ._cli import main

sys.exit(main())
