"""``python -m fembone ...``: the same command line as the ``fembone`` script."""

import sys

from fembone.apps.cli import main

if __name__ == "__main__":
    sys.exit(main())
