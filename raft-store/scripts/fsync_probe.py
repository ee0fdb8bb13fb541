"""fdatasync latency probe: `python3 fsync_probe.py DIR [N]`.

append:    write 4 KiB at the end of the file, then fdatasync (the file grows: ext4 must also
           commit the size change, like a WAL that is not preallocated).
overwrite: rewrite 4 KiB inside a preallocated file, then fdatasync (data only).
"""
import os, sys, time

def probe(path, n, overwrite):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    block = b"\x07" * 4096
    if overwrite:
        os.write(fd, block * 256)
        os.fsync(fd)
    lat = []
    for i in range(n):
        t = time.perf_counter_ns()
        if overwrite:
            os.pwrite(fd, block, (i % 256) * 4096)
        else:
            os.write(fd, block)
        os.fdatasync(fd)
        lat.append(time.perf_counter_ns() - t)
    os.close(fd)
    os.unlink(path)
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] / 1000
    mode = "overwrite" if overwrite else "append"
    print(f"{mode:9} n={n} p50={q(0.5):.0f}us p90={q(0.9):.0f}us p99={q(0.99):.0f}us")

directory = sys.argv[1] if len(sys.argv) > 1 else "."
n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
probe(os.path.join(directory, "fsync-probe.bin"), n, False)
probe(os.path.join(directory, "fsync-probe.bin"), n, True)
