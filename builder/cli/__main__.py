"""`python -m builder.cli`: the same as the `qmail-pkg` command."""

import sys

from . import main

sys.exit(main())
