"""Peak memory of a peer process, shared by the peer_*.py benchmark scripts."""


def peak_rss_mib():
    """This process's peak resident memory in MiB (VmHWM: unlike ru_maxrss, it does not carry the peak of the forked
    copy of the calling rankwise process)."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0
