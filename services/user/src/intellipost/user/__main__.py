"""Command line: ``python -m intellipost.user [serve|migrate]``."""

from __future__ import annotations

import sys

from intellipost.shared.cli import run_cli
from intellipost.user.config import get_config
from intellipost.user.main import build_database

if __name__ == "__main__":
    run_cli(sys.argv[1:], get_config(), app="intellipost.user.main:app", database=build_database)
