"""The Wyoming server advertised over mDNS (``_wyoming._tcp.local.``), so Home Assistant's Wyoming
integration discovers the box and offers to add it (its manifest lists that zeroconf type).

Built on python-zeroconf, the library Home Assistant itself uses. ``wyoming.zeroconf`` does the same
registration but offers no way to withdraw it, and a box that stops should say goodbye (Home
Assistant would otherwise keep offering a service that is gone), so the few calls are made here.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from dataclasses import dataclass
from urllib.parse import urlparse

from casavox.errors import CasavoxError

log = logging.getLogger(__name__)

SERVICE_TYPE = "_wyoming._tcp.local."
MDNS_GROUP = "224.0.0.251"


class ZeroconfError(CasavoxError, ValueError):
    """The server cannot be advertised from where it listens (one line, before anything starts)."""


def default_name() -> str:
    """``casavox-<host name>``: what Home Assistant shows for a discovered box."""
    return "casavox-" + (socket.gethostname().split(".")[0] or "box")


def _lan_address() -> str:
    """The address this machine reaches the mDNS group from (no packet is sent: a UDP connect only)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((MDNS_GROUP, 5353))
        except OSError as exc:
            raise ZeroconfError(f"zeroconf: no network to advertise on ({exc.strerror or exc})") from None
        return s.getsockname()[0]


def advertised_address(uri: str) -> tuple[str, int]:
    """The (IPv4 address, port) to advertise for a server listening on ``uri``.

    A loopback bind is refused: Home Assistant on another machine could not connect to what it
    found (and one on this machine needs no discovery). ``0.0.0.0`` advertises the LAN address."""
    parsed = urlparse(uri)
    if parsed.scheme != "tcp" or parsed.port is None:
        raise ZeroconfError(f"zeroconf: only a tcp://HOST:PORT server can be advertised, not {uri}")
    host = parsed.hostname or ""
    if host in ("", "0.0.0.0", "::"):
        return _lan_address(), parsed.port
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = ipaddress.ip_address(socket.gethostbyname(host))
    if address.is_loopback:
        raise ZeroconfError(
            f"zeroconf: the server listens on {host} (loopback only), which no other machine can reach; "
            "listen on the LAN (--uri tcp://0.0.0.0:PORT) to be discovered"
        )
    if address.version != 4:
        raise ZeroconfError(f"zeroconf: advertise an IPv4 bind, not {host}")
    return str(address), parsed.port


@dataclass
class Advertisement:
    """A registered service; :meth:`close` withdraws it (a goodbye packet) and stops the responder."""

    name: str
    address: str
    port: int
    _zc: object
    _info: object

    async def close(self) -> None:
        await self._zc.async_unregister_service(self._info)
        await self._zc.async_close()


async def advertise(uri: str, name: str | None = None) -> Advertisement:
    """Register the Wyoming server on ``uri`` as ``<name>._wyoming._tcp.local.``."""
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    address, port = advertised_address(uri)
    name = name or default_name()
    info = AsyncServiceInfo(
        SERVICE_TYPE,
        f"{name}.{SERVICE_TYPE}",
        addresses=[socket.inet_aton(address)],
        port=port,
        properties={"program": "casavox"},
    )
    zc = AsyncZeroconf()
    await zc.async_register_service(info)
    log.info("advertised as %s on %s:%d (zeroconf %s)", name, address, port, SERVICE_TYPE)
    return Advertisement(name, address, port, zc, info)
