"""A GPU process's container or pod, from the text of /proc/<pid>/cgroup."""

from __future__ import annotations

import os

import pytest

from labcap.collectors.gpu import CgroupOwner, owner_from_cgroup, process_owner

CID = "3f4e9d2c1b0a" + "8" * 52
POD = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"

CASES = [
    ("0::/system.slice/docker-{cid}.scope\n", CgroupOwner(CID, None, "docker")),
    (
        "12:memory:/docker/{cid}\n11:cpu,cpuacct:/docker/{cid}\n0::/\n",
        CgroupOwner(CID, None, "docker"),
    ),
    (
        "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{pod_}.slice/"
        "cri-containerd-{cid}.scope\n",
        CgroupOwner(CID, POD, "containerd"),
    ),
    (
        "11:memory:/kubepods/burstable/pod{pod}/{cid}\n",
        CgroupOwner(CID, POD, "kubepods"),
    ),
    (
        "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{pod_}.slice/"
        "crio-{cid}.scope\n",
        CgroupOwner(CID, POD, "cri-o"),
    ),
    (
        "0::/user.slice/user-1000.slice/libpod-{cid}.scope/container\n",
        CgroupOwner(CID, None, "podman"),
    ),
    ("0::/user.slice/user-1000.slice/session-3.scope\n", CgroupOwner(None, None, None)),
]


@pytest.mark.parametrize("text,expected", CASES)
def test_owner_from_cgroup(text, expected):
    text = text.format(cid=CID, pod=POD, pod_=POD.replace("-", "_"))
    assert owner_from_cgroup(text) == expected


def test_process_owner_reads_the_real_proc_and_survives_a_gone_pid():
    name, owner = process_owner(os.getpid())
    assert name and isinstance(owner, CgroupOwner)
    assert process_owner(2**22 + 7) == (None, CgroupOwner(None, None, None))
