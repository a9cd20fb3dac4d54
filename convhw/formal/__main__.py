"""``python -m convhw.formal [--list] [--only NAME] [--build-dir DIR]``."""

import sys

from .runner import main

sys.exit(main())
