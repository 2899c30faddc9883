"""``python -m netreveal.cli``."""

import sys

from netreveal.cli import main

sys.exit(main())
