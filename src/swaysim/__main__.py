"""``python -m swaysim``."""

from __future__ import annotations

import sys

from swaysim._demo import main

if __name__ == "__main__":
    if sys.argv[1:] != ["demo"]:
        sys.exit("usage: python -m swaysim demo")
    main()
