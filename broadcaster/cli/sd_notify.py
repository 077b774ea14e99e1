"""Readiness for systemd (``Type=notify``): one datagram to ``$NOTIFY_SOCKET``, nothing when it is unset.

``broadcaster serve`` sends ``READY=1`` once it listens and ``STOPPING=1`` when it begins to stop, so
``systemctl start`` returns only when the port answers, and a unit ordered ``After=`` it starts then. This is
the whole of ``sd_notify(3)`` the service needs; no libsystemd binding is imported. A path starting with ``@``
is an abstract socket (Linux). A send is one local datagram (microseconds), made on the event loop.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Final

NOTIFY_SOCKET_ENV: Final = "NOTIFY_SOCKET"
READY: Final = "READY=1"
STOPPING: Final = "STOPPING=1"
log = logging.getLogger("broadcaster.sd_notify")


def notify(state: str) -> bool:
    """Send ``state`` (``READY=1``, ``STOPPING=1``, ``STATUS=…``) to the service manager; True if it was sent.

    Without ``$NOTIFY_SOCKET`` (not started by systemd with ``Type=notify``) it does nothing. A socket that
    cannot be reached is logged, never raised: the service runs on, and systemd's start timeout says the rest.
    """
    address = os.environ.get(NOTIFY_SOCKET_ENV, "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        log.warning("%s=%r is neither a socket path nor an abstract socket (@name); not notified",
                    NOTIFY_SOCKET_ENV, address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("could not notify the service manager (%s) of %s: %s", NOTIFY_SOCKET_ENV, state,
                    os.strerror(exc.errno) if exc.errno else exc)
        return False
    return True
