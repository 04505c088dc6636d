"""``python -m swaysim``: the same command line as the ``swaysim`` console script."""

from __future__ import annotations

from swaysim._cli.main import main

if __name__ == "__main__":
    main()
