"""CPU package energy from RAPL through Linux powercap (/sys/class/powercap/intel-rapl:N).

Each top-level zone ``intel-rapl:N`` whose ``name`` is ``package-N`` is one CPU package (AMD
CPUs appear under the same names on recent kernels). ``energy_uj`` is a counter in microjoules
that wraps to 0 after ``max_energy_range_uj``; sub-zones (core, uncore, dram) and ``psys`` are
not added, so the sum over packages is the package energy of the machine, not its wall power.
Since Linux 5.10 (CVE-2020-8694) ``energy_uj`` is readable by root only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

POWERCAP_ROOT = Path("/sys/class/powercap")
ROOT_ENV = (
    "CNNBENCH_POWERCAP_ROOT"  # another root, for tests and containers that mount it elsewhere
)
_ZONE = re.compile(r"^intel-rapl:(\d+)$")


class RaplUnavailable(Exception):
    """RAPL cannot be read here; ``reason`` says why and how to fix it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RaplZone:
    """One package's energy counter."""

    name: str
    energy_path: Path
    max_energy_range_uj: int

    def read_uj(self) -> int:
        """The counter now, in microjoules."""
        return int(self.energy_path.read_text().strip())


def counter_delta_uj(before: int, after: int, max_energy_range_uj: int) -> int:
    """Energy between two readings of one counter, in uJ, across at most one wraparound."""
    if after >= before:
        return after - before
    return after + max_energy_range_uj - before


def find_package_zones(root: Path = POWERCAP_ROOT) -> list[RaplZone]:
    """The readable package zones under ``root``, in package order.

    Raises ``RaplUnavailable`` when there is no RAPL, no package zone, or no permission.
    """
    hint = "CPU power is not measured (pass --cnn-power=off to silence this)"
    if not root.is_dir():
        raise RaplUnavailable(f"no powercap interface at {root} (no RAPL on this machine); {hint}")
    zones: list[tuple[int, RaplZone]] = []
    for path in root.iterdir():
        match = _ZONE.match(path.name)
        if match is None:
            continue
        try:
            name = (path / "name").read_text().strip()
        except OSError:
            continue
        if not name.startswith("package"):
            continue  # psys and other top-level zones are not CPU packages
        energy = path / "energy_uj"
        try:
            max_range = int((path / "max_energy_range_uj").read_text().strip())
            RaplZone(name, energy, max_range).read_uj()
        except PermissionError as err:
            raise RaplUnavailable(
                f"RAPL counter {energy} is readable by root only (Linux 5.10 and newer, "
                "CVE-2020-8694); run as root or grant read access to the energy_uj files; "
                f"{hint}"
            ) from err
        except (OSError, ValueError) as err:
            raise RaplUnavailable(
                f"RAPL counter {energy} could not be read ({err}); {hint}"
            ) from err
        zones.append((int(match.group(1)), RaplZone(name, energy, max_range)))
    if not zones:
        raise RaplUnavailable(
            f"no RAPL package zone (intel-rapl:N named package-N) in {root}; {hint}"
        )
    return [zone for _, zone in sorted(zones, key=lambda z: z[0])]
