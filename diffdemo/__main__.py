"""``python -m diffdemo``."""

import sys

from diffdemo.cli import main

sys.exit(main())
