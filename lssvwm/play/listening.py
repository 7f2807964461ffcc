"""The player's listening socket, bound before the model loads (no absl flags here: tests import
it beside other command lines' modules)."""

from __future__ import annotations

import errno
import socket

from lssvwm.errors import LssvwmError


class PortInUseError(LssvwmError):
    """The address to serve on is taken (or cannot be bound)."""


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port), bound before the model loads: a port in use is one
    line at once, and nothing can take it between the check and the server's start."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"--port={port} on {host} is in use (another player?): pass another --port, "
                "or --port=0 for any free one"
            ) from None
        raise PortInUseError(f"cannot serve on {host}:{port}: {error.strerror}") from None
    sock.listen(16)
    sock.set_inheritable(True)
    return sock
