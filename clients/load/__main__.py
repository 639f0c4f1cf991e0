"""``python -m oms.clients.load``."""
import sys

from oms.clients.load.cli import main

if __name__ == "__main__":  # not in the spawned worker processes, which import this module
    sys.exit(main())
