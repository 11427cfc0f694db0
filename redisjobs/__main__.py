"""``python -m redisjobs`` is the ``redisjobs`` command."""

import sys

from .cli import main

sys.exit(main())
