"""Command line: ``python -m intellipost.sandbox``."""

from __future__ import annotations

import sys

from intellipost.sandbox.config import get_config
from intellipost.shared.cli import run_cli

if __name__ == "__main__":
    run_cli(sys.argv[1:], get_config(), app="intellipost.sandbox.main:app")
