"""`python -m pier`: exactly the `pier` console script (pier.cli.main)."""

from __future__ import annotations

from pier.cli import main

if __name__ == "__main__":
    main()
