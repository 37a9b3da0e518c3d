"""The live driver's old module (until issue 14 split it by job), kept so that existing imports
still work; new code imports from where things now live:

* :class:`CoreDriver`: emulator/live/driver.py;
* :class:`BindError`, :func:`describe_os_error`: emulator/live/sockets.py;
* the UDP socket (``SOCKET_BUFFER``): emulator/live/udp.py;
* TCP/TLS listeners, connections and framing (``CONNECT_TIMEOUT``): emulator/live/stream.py;
* the TLS memory-BIO layer: emulator/live/tls.py; certificates: emulator/live/certs.py;
* :class:`Core`, the driving contract: emulator/net.py.
"""

from __future__ import annotations

from emulator.live.driver import CoreDriver
from emulator.live.sockets import BindError, describe_os_error
from emulator.live.stream import CONNECT_TIMEOUT
from emulator.live.udp import SOCKET_BUFFER
from emulator.net import Core

__all__ = [
    "CONNECT_TIMEOUT",
    "SOCKET_BUFFER",
    "BindError",
    "Core",
    "CoreDriver",
    "describe_os_error",
]
