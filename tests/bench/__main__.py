"""`python -m tests.bench`: see tests/bench/run.py and docs/performance.md."""

import sys

from tests.bench.run import main

sys.exit(main())
