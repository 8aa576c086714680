"""virtio-net feature bits (virtio spec 1.1, section 5.1.3) and their names: facts of the
specification, pure Python."""

from __future__ import annotations

VIRTIO_NET_F_CSUM = 0
VIRTIO_NET_F_GUEST_CSUM = 1
VIRTIO_NET_F_GUEST_TSO4 = 7
VIRTIO_NET_F_GUEST_TSO6 = 8
VIRTIO_NET_F_GUEST_ECN = 9
VIRTIO_NET_F_GUEST_UFO = 10
VIRTIO_NET_F_HOST_TSO4 = 11
VIRTIO_NET_F_HOST_TSO6 = 12
VIRTIO_NET_F_HOST_ECN = 13
VIRTIO_NET_F_HOST_UFO = 14
VIRTIO_NET_F_MRG_RXBUF = 15
VIRTIO_NET_F_STATUS = 16
VIRTIO_NET_F_CTRL_VQ = 17
VIRTIO_NET_F_GUEST_ANNOUNCE = 21
VIRTIO_NET_F_MQ = 22
VIRTIO_NET_F_MTU = 3
VIRTIO_F_NOTIFY_ON_EMPTY = 24
VIRTIO_F_ANY_LAYOUT = 27
VIRTIO_RING_F_INDIRECT_DESC = 28
VIRTIO_RING_F_EVENT_IDX = 29
VHOST_USER_F_PROTOCOL_FEATURES = 30
VIRTIO_F_VERSION_1 = 32
VIRTIO_F_IOMMU_PLATFORM = 33
VIRTIO_F_RING_PACKED = 34
VIRTIO_F_IN_ORDER = 35

FEATURE_NAMES = {v: k for k, v in globals().items()
                 if k.startswith(("VIRTIO_", "VHOST_USER_F")) and isinstance(v, int)}

# As OVS-DPDK without userspace TSO: no segmentation/checksum offload from the guest.
DEFAULT_DISABLED_FEATURES = ((1 << VIRTIO_NET_F_HOST_TSO4) | (1 << VIRTIO_NET_F_HOST_TSO6)
                             | (1 << VIRTIO_NET_F_HOST_ECN) | (1 << VIRTIO_NET_F_HOST_UFO)
                             | (1 << VIRTIO_NET_F_CSUM))


def feature_names(bits: int) -> list[str]:
    """Names of the virtio feature bits set in ``bits``."""
    return [FEATURE_NAMES.get(i, f"bit{i}") for i in range(64) if bits >> i & 1]
