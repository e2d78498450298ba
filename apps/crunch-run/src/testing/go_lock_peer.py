"""Arvados's Go crunch-run's side of the lock-file protocol, for tests: an independent
implementation (flock(2) through Python's fcntl) of what lib/crunchrun/background.go does.

  hold DIR UUID [PID]  take the container's lock as `crunch-run --detach` does, record PID (by
                       default our own), print "locked", then wait to be killed; SIGUSR2 prints
                       "usr2" and SIGTERM exits 0
  try-shared FILE      print "free" if a shared lock can be taken without waiting, else "held"
  list DIR             `crunch-run --list`: the same lines, by the same rules
"""

import fcntl
import json
import os
import signal
import sys
import time


def lock_all(lockdir):
    f = open(os.path.join(lockdir, "crunch-run-all.lock"), "a+")
    fcntl.flock(f, fcntl.LOCK_EX)
    return f


def hold(lockdir, uuid, pid):
    dirlock = lock_all(lockdir)
    fd = os.open(os.path.join(lockdir, "crunch-run-%s.lock" % uuid), os.O_CREAT | os.O_RDWR, 0o700)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("busy", flush=True)
        return 1
    dirlock.close()
    os.ftruncate(fd, 0)
    os.write(fd, (json.dumps({"UUID": uuid, "PID": pid}, separators=(",", ":")) + "\n").encode())
    signal.signal(signal.SIGUSR2, lambda *_: print("usr2", flush=True))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("locked", flush=True)
    while True:
        time.sleep(3600)


def try_shared(path):
    with open(path) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            print("held")
            return 0
    print("free")
    return 0


def list_processes(lockdir):
    for name in sorted(os.listdir(lockdir)):
        path = os.path.join(lockdir, name)
        if os.path.isdir(path):
            continue
        if name == "crunch-run-broken":
            print("broken")
            continue
        if not (name.startswith("crunch-run-") and name.endswith(".lock")):
            continue
        if os.path.getsize(path) == 0:
            continue
        with open(path) as f:
            dirlock = lock_all(lockdir)
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
                os.remove(path)
                dirlock.close()
                continue
            except BlockingIOError:
                dirlock.close()
            pi = json.loads(f.read())
            if not pi.get("UUID") or not pi.get("PID"):
                continue
            try:
                os.kill(pi["PID"], signal.SIGUSR2)
            except OSError:
                print(pi["UUID"], "stale")
                continue
            print(pi["UUID"])
    return 0


def main(argv):
    if argv[1] == "hold":
        return hold(argv[2], argv[3], int(argv[4]) if len(argv) > 4 else os.getpid())
    if argv[1] == "try-shared":
        return try_shared(argv[2])
    if argv[1] == "list":
        return list_processes(argv[2])
    print("unknown command", argv[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
