"""Command line: ``python -m intellipost.ai_content [serve|migrate]``."""

from __future__ import annotations

import sys

from intellipost.ai_content.config import get_config
from intellipost.ai_content.main import build_database
from intellipost.shared.cli import run_cli

if __name__ == "__main__":
    run_cli(
        sys.argv[1:], get_config(), app="intellipost.ai_content.main:app", database=build_database
    )
