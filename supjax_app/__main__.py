"""``python -m supjax_app``: the same as the ``supjax`` command."""

import sys

from supjax_app.cli import main

if __name__ == "__main__":
    sys.exit(main())
