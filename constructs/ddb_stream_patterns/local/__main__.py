"""``python -m ddb_stream_patterns.local``: the example app, end to end, on a local cloud."""

import sys

from .runner import main

sys.exit(main())
