"""``python -m qkv`` runs the command line (``torchrun -m qkv …`` too)."""

import sys

from qkv.cli.main import main

sys.exit(main())
