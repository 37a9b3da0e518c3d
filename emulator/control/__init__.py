"""The control plane of a live deployment: an HTTP/JSON API (with an OpenAPI document, an
event stream and Prometheus metrics) served by ``sipemu up`` on its own event loop, and
``sipemu ctl``, its command-line client (docs/live.md).

Drivers, not cores: this package does I/O and is not compiled (setup.py).
"""

from __future__ import annotations

from emulator.control.server import (
    DEFAULT_CONTROL,
    TOKEN_ENV,
    ControlServer,
    parse_control_address,
)

__all__ = ["DEFAULT_CONTROL", "TOKEN_ENV", "ControlServer", "parse_control_address"]
