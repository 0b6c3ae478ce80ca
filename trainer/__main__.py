"""``python -m trainer`` runs the ``nilm-trainer`` CLI."""

import sys

from .cli import main

sys.exit(main())
