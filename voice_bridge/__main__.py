"""``python -m voice_bridge``: the same as ``paybot bridge``."""

import sys

from paybot.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["bridge"]))
