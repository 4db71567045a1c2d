"""``python -m dropkit ...``: the same as the ``dropkit`` command."""

import sys

from dropkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
