"""Command line: ``python -m intellipost.mercadolibre [serve|migrate]``."""

from __future__ import annotations

import sys

from intellipost.mercadolibre.config import get_config
from intellipost.mercadolibre.main import build_database
from intellipost.shared.cli import run_cli

if __name__ == "__main__":
    run_cli(
        sys.argv[1:], get_config(), app="intellipost.mercadolibre.main:app", database=build_database
    )
