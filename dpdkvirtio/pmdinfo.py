"""The poll-mode drivers on this host and their devargs, read from the driver files'
embedded PMD_INFO_STRING records with pyelftools (as dpdk-pmdinfo.py does, without ldd
and without starting DPDK).

The params strings are templates written by each driver's authors, not complete key
lists (net_vhost accepts ``legacy-ol-flags`` without listing it), and they name only the
canonical driver (``eth_vhost`` is an alias of ``net_vhost``). So unknown keys are a
warning naming the known ones, never a refusal: DPDK itself rejects truly unknown keys
when the device is probed.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path

_PMD_RE = re.compile(rb"PMD_INFO_STRING= (\{[\x20-\x7e]*?\})\x00")
_PLUGIN_RE = re.compile(rb"DPDK_PLUGIN_PATH=([\x20-\x7e]+)\x00")
DEFAULT_PLUGIN_DIR = "/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0"

# Aliases registered with RTE_PMD_REGISTER_ALIAS (not in the PMD info records).
ALIASES = {"eth_vhost": "net_vhost", "virtio_user": "net_virtio_user", "eth_ring": "net_ring",
           "eth_null": "net_null", "eth_tap": "net_tap", "eth_pcap": "net_pcap",
           "eth_af_packet": "net_af_packet", "eth_bond": "net_bonding"}
# Keys drivers accept without listing them in their params string (DPDK 22.11).
UNLISTED_KEYS = {"net_vhost": {"legacy-ol-flags"}}


def _rodata(path) -> bytes:
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    try:
        with open(path, "rb") as f:
            sec = ELFFile(f).get_section_by_name(".rodata")
            return sec.data() if sec is not None else b""
    except (ELFError, OSError):
        return b""


def _eal_library() -> str | None:
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                if "librte_eal.so" in line:
                    return line.split()[-1]
    except OSError:
        pass
    for cand in ("/usr/lib/x86_64-linux-gnu/librte_eal.so.23", "/usr/lib/librte_eal.so.23"):
        if os.path.exists(cand):
            return cand
    return None


def plugin_dir() -> Path | None:
    """The directory EAL loads driver plugins from (DPDK_PLUGIN_PATH in librte_eal)."""
    lib = _eal_library()
    if lib:
        m = _PLUGIN_RE.search(_rodata(lib))
        if m:
            return Path(m.group(1).decode())
    return Path(DEFAULT_PLUGIN_DIR) if os.path.isdir(DEFAULT_PLUGIN_DIR) else None


def param_keys(params: str) -> dict[str, str]:
    """'iface=<ifc> queues=<int>' → {'iface': '<ifc>', 'queues': '<int>'}."""
    out = {}
    for tok in (params or "").split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            out[k] = v
    return out


@functools.lru_cache(maxsize=1)
def drivers() -> tuple:
    """Every PMD on this host: dicts with name, params (key → value template), file,
    kmod, pci_ids (count)."""
    d = plugin_dir()
    if d is None or not d.is_dir():
        return ()
    out = {}
    for f in sorted(d.iterdir()):
        if not (f.name.endswith(".so") or re.search(r"\.so\.\d+\.\d+$", f.name)):
            continue
        real = f.resolve()
        for m in _PMD_RE.finditer(_rodata(real)):
            try:
                info = json.loads(m.group(1))
            except json.JSONDecodeError:
                continue
            name = info.get("name")
            if not name or name in out:
                continue
            out[name] = {"name": name, "params": param_keys(info.get("params", "")),
                         "file": str(real), "kmod": info.get("kmod"),
                         "pci_ids": len(info.get("pci_ids") or [])}
    return tuple(out[k] for k in sorted(out))


def find_driver(devname: str) -> dict | None:
    """The driver a vdev name selects (EAL matches names and aliases by prefix)."""
    table = {d["name"]: d for d in drivers()}
    best = None
    for name in list(table) + list(ALIASES):
        if devname.startswith(name) and (best is None or len(name) > len(best)):
            best = name
    if best is None:
        return None
    return table.get(ALIASES.get(best, best))


def check_devargs(devname: str, devargs: str) -> list[str]:
    """Warnings about ``devname`` + ``devargs`` before probing: an unknown driver, or keys
    the driver does not list (naming the keys it does)."""
    drv = find_driver(devname)
    if drv is None:
        if not drivers():
            return []                     # no driver files readable: nothing to say
        return [f"no driver on this host matches {devname!r} (see `dpdkvirtio drivers`)"]
    known = set(drv["params"]) | UNLISTED_KEYS.get(drv["name"], set())
    warnings = []
    for pair in filter(None, (devargs or "").split(",")):
        key = pair.split("=", 1)[0]
        if key not in known:
            warnings.append(f"{drv['name']} does not list devargs key {key!r}; known keys: "
                            f"{', '.join(sorted(known)) or 'none'}")
    return warnings
