"""``python -m vid2vid_fast``: the ``vid2vid-fast`` command."""

import sys

from .cli import main

sys.exit(main())
