"""The app's name as each target spells it (``--app`` or the app root's name).

systemd unit names and supervisord group names keep the case and allow
``[A-Za-z0-9_.-]``; Kubernetes object names, labels and container names must be
DNS-1123 labels: lowercase ``[a-z0-9-]``, alphanumeric at both ends, at most 63
characters. Anything else becomes ``-``.
"""

from __future__ import annotations

import re

from keelrun.errors import InputError

DNS_LABEL_MAX = 63
# systemd refuses unit names longer than 255 bytes; leave room for "@<n>.service".
UNIT_PREFIX_MAX = 200

_UNIT_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_DNS_UNSAFE = re.compile(r"[^a-z0-9-]+")


def unit_name(raw: str, where: str = "--app") -> str:
    """``raw`` made safe as a systemd unit name prefix or a supervisord group name."""
    name = _UNIT_UNSAFE.sub("-", raw).strip("-.")
    if not name:
        raise InputError(where, f"{raw!r} has no character usable in a unit name")
    if len(name) > UNIT_PREFIX_MAX:
        raise InputError(where, f"{raw!r} is longer than {UNIT_PREFIX_MAX} characters")
    return name


def dns_label(raw: str, where: str = "--app") -> str:
    """``raw`` made a DNS-1123 label (Kubernetes names, label values, containers)."""
    name = _DNS_UNSAFE.sub("-", raw.lower()).strip("-")
    if not name:
        raise InputError(where, f"{raw!r} has no character usable in a Kubernetes name")
    if len(name) > DNS_LABEL_MAX:
        raise InputError(where, f"{raw!r} is longer than {DNS_LABEL_MAX} characters")
    return name
