"""``python -m paybot_cli ...``: the same as the ``paybot`` console script."""

import sys

from paybot_cli.main import main

if __name__ == "__main__":
    sys.exit(main())
