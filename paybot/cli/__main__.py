"""``python -m paybot.cli ...``: the same as the ``paybot`` console script."""

import sys

from paybot.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
