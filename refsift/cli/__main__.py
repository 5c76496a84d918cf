"""`python -m refsift.cli`: the same as the `refsift` command."""

import sys

from refsift.cli import main

sys.exit(main())
