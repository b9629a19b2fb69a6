#!/usr/bin/env python3
"""A FUSE mount that answers the kernel's INIT and nothing else, for tests.

    stalled-mount.py PID PATH

Mounts it on PATH inside the mount namespace of process PID (a container's) and serves it:
every lookup, statfs, open or read under PATH then waits in the kernel for an answer that never
comes, as on a stuck NFS or FUSE mount. Prints "mounted", then "request OPCODE TID" for each
request. Killing this process ends the connection: the requests still waiting fail (ENOTCONN).
Written against the kernel's protocol (linux/fuse.h), no libfuse.
"""
import ctypes
import errno
import os
import struct
import sys

CLONE_NEWNS = 0x00020000
MS_NOSUID, MS_NODEV = 2, 4
FUSE_INIT = 26


def fail(what):
    code = ctypes.get_errno()
    sys.exit(f"stalled-mount: {what}: {os.strerror(code)}")


def main():
    pid, path = int(sys.argv[1]), sys.argv[2]
    libc = ctypes.CDLL(None, use_errno=True)
    device = os.open("/dev/fuse", os.O_RDWR)
    namespace = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
    if libc.setns(namespace, CLONE_NEWNS) != 0:
        fail("setns")
    options = f"fd={device},rootmode=40000,user_id=0,group_id=0,allow_other".encode()
    if libc.mount(b"pgnode-stalled", path.encode(), b"fuse", MS_NOSUID | MS_NODEV, options) != 0:
        fail(f"mount on {path}")
    print("mounted", flush=True)
    while True:
        try:
            data = os.read(device, (1 << 20) + 4096)
        except OSError as error:
            if error.errno in (errno.EINTR, errno.EAGAIN, errno.ENOENT):
                continue
            return  # ENODEV: unmounted
        _, opcode, unique, _, _, _, tid = struct.unpack_from("<IIQQIII", data)
        if opcode == FUSE_INIT:
            readahead = struct.unpack_from("<I", data, 48)[0]
            # fuse_init_out: 7.31, no optional features, 4 KiB writes, 1 ns time granularity.
            body = struct.pack("<4I2H2I2H2I6I", 7, 31, readahead, 0, 0, 0, 4096, 1, 0, 0, 0, 0, *[0] * 6)
            os.write(device, struct.pack("<IiQ", 16 + len(body), 0, unique) + body)
            continue
        print(f"request {opcode} {tid}", flush=True)  # and no answer


main()
