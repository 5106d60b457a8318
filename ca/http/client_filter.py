"""Which client addresses a service answers at all (an allow-list of networks; empty: anyone)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


class ClientFilter:
    def __init__(self, networks: Iterable[str] = ()) -> None:
        self.networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)

    def allows(self, address: str) -> bool:
        if not self.networks:
            return True
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:  # no address (a Unix socket, a test client): not on any list
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.networks if network.version == ip.version)
