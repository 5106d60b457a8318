"""Whether an audit record names a certificate: some field of its JSON detail names it exactly.

A certificate is named by its row id (`certificate_id`), its serial under its CA (`serial`, hex
or a number, with `ca` when the record has one), the public id of a request for it (`request`,
`requests`), or "ca:serial" (`certificates`, as the RA's list reads record it).  A substring
search alone would also find serial 1ab when asked for ab, so the candidates found in SQL are
judged here.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any


@dataclasses.dataclass(frozen=True, slots=True)
class Named:
    """How records may name one certificate."""

    certificate_id: int
    ca: str
    serial: int
    request_ids: frozenset[str]

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "x")

    def needles(self) -> list[str]:
        """Substrings of a detail that names it (a superset; `names` judges)."""
        return [f'"certificate_id": {self.certificate_id}', self.serial_hex, str(self.serial),
                *sorted(self.request_ids)]

    def names(self, detail_json: str) -> bool:
        try:
            detail = json.loads(detail_json or "{}")
        except ValueError:
            return False
        return isinstance(detail, dict) and self._in(detail)

    def _in(self, detail: dict[str, Any]) -> bool:
        if detail.get("certificate_id") == self.certificate_id:
            return True
        if "serial" in detail and self._serial(detail["serial"]) and detail.get("ca", self.ca) in (self.ca, None):
            return True
        for key in ("request", "requests"):
            value = detail.get(key)
            values = value if isinstance(value, list) else [value]
            if any(isinstance(v, str) and v in self.request_ids for v in values):
                return True
        listed = detail.get("certificates")
        return isinstance(listed, list) and f"{self.ca}:{self.serial_hex}" in listed

    def _serial(self, value: object) -> bool:
        if isinstance(value, int) and not isinstance(value, bool):
            return value == self.serial
        if isinstance(value, str):
            text = value.lower().removeprefix("0x").replace(":", "")
            try:
                return int(text, 16) == self.serial
            except ValueError:
                return False
        return False
