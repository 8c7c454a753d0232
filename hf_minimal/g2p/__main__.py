"""`python -m hf_minimal.g2p`: the hf-minimal-g2p command (hf_minimal/g2p/cli.py)."""

import sys

from .cli import main

sys.exit(main())
