"""``python -m redisjobs.pyjobkit``: Pyjobkit's worker command."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    main()
