"""Container entry point: runs the image's component as ``python -m intellipost.<component>``."""

from __future__ import annotations

import os
import runpy

component = os.environ["INTELLIPOST_COMPONENT"]
# Outside a container a component binds loopback only; inside one it must answer on the
# container's own address. An explicit INTELLIPOST_<MODULE>_HOST still wins.
os.environ.setdefault(f"INTELLIPOST_{component.upper()}_HOST", "0.0.0.0")
# alter_sys keeps the arguments (serve | migrate) and makes the module __main__, exactly
# as `python -m` would, in this same process: no shell or child between PID 1 and uvicorn.
runpy.run_module(f"intellipost.{component}", run_name="__main__", alter_sys=True)
