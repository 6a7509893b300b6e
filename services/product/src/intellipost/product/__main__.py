"""Command line: ``python -m intellipost.product [serve|migrate]``."""

from __future__ import annotations

import sys

from intellipost.product.config import get_config
from intellipost.product.main import build_database
from intellipost.shared.cli import run_cli

if __name__ == "__main__":
    run_cli(sys.argv[1:], get_config(), app="intellipost.product.main:app", database=build_database)
