"""``python -m broadcaster``: the same CLI as the ``broadcaster`` console script."""

import sys

from broadcaster.cli import main

sys.exit(main())
