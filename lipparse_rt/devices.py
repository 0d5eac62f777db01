"""Linux's V4L2 camera nodes (/dev/videoN): which give pictures (a UVC camera's second node
gives only metadata) and the cameras' names, asked of the driver or read from sysfs, for
`webcam`'s errors and `info`. Elsewhere: nothing to list.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

DEV = Path("/dev")  # where Linux's V4L2 cameras appear, as videoN


SYS_V4L = Path("/sys/class/video4linux")  # each device's name and node index (Linux)
VIDIOC_QUERYCAP = 0x80685600  # _IOR('V', 0, struct v4l2_capability): 104 bytes
_CAP_PICTURE = 0x1 | 0x1000  # V4L2_CAP_VIDEO_CAPTURE, V4L2_CAP_VIDEO_CAPTURE_MPLANE
_CAP_DEVICE_CAPS = 0x80000000  # device_caps holds this node's own capabilities


@dataclass(frozen=True)
class VideoNode:
    """A /dev/videoN device node (Linux)."""

    index: int
    name: str  # the camera's name ('HD Pro Webcam C920'); '' where the system does not say
    picture: bool  # it gives pictures; a UVC camera's second node gives only metadata

    def __str__(self) -> str:
        return f"{self.index} ({self.name})" if self.name else str(self.index)


def video_nodes() -> list[VideoNode]:
    """The /dev/videoN nodes present (Linux), in order, with their names and whether they give
    pictures: asked of the device (VIDIOC_QUERYCAP), else read from sysfs, where a device's
    first node (index 0) is the one that gives its pictures."""
    nodes = []
    for n in sorted(int(p.name[5:]) for p in DEV.glob("video*") if p.name[5:].isdigit()):
        name, picture = _query_caps(DEV / f"video{n}")
        if picture is None:
            name = name or _sys_text(SYS_V4L / f"video{n}" / "name")
            picture = _sys_text(SYS_V4L / f"video{n}" / "index") in ("", "0")
        nodes.append(VideoNode(n, name, picture))
    return nodes


def _query_caps(path: Path) -> tuple[str, bool | None]:
    """A V4L2 node's name and whether it gives pictures, asked of its driver; ('', None) where
    it cannot be asked (not a V4L2 device, no permission)."""
    import fcntl
    import struct

    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    except OSError:
        return "", None
    try:
        buf = bytearray(104)
        fcntl.ioctl(fd, VIDIOC_QUERYCAP, buf, True)
    except OSError:
        return "", None
    finally:
        os.close(fd)
    name = bytes(buf[16:48]).split(b"\0")[0].decode(errors="replace").strip()
    caps, node_caps = struct.unpack_from("=II", buf, 84)
    return name, bool((node_caps if caps & _CAP_DEVICE_CAPS else caps) & _CAP_PICTURE)


def _sys_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def cameras_here() -> str:
    """'cameras here: 0 (Integrated Camera), 2 (HD Pro Webcam C920)': the nodes that give pictures."""
    found = [str(node) for node in video_nodes() if node.picture]
    return f"cameras here: {', '.join(found)}" if found else "no /dev/video* camera here"


def metadata_node(target: int | str) -> VideoNode | None:
    """The /dev/videoN node that `target` (an index or the node's path) names, where it gives no
    picture (Linux)."""
    match = re.fullmatch(r"(?:/dev/video)?(\d+)", str(target))
    if not sys.platform.startswith("linux") or not match:
        return None
    return next((n for n in video_nodes() if n.index == int(match[1]) and not n.picture), None)
