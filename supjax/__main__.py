"""``python -m supjax``: the same as the ``supjax`` command."""

import sys

from supjax.cli import main

if __name__ == "__main__":
    sys.exit(main())
