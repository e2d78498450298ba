# A stand-in for systemd's notification socket: binds a unix datagram socket (name@ for an
# abstract one), reads each message with the sender's kernel-attached credentials (as systemd
# does with SO_PASSCRED), and on READY=1 asks the health URL at once, so the test can tell
# whether the management API already answered when READY=1 arrived. One JSON line per message.
import json, socket, struct, sys, urllib.request

address, health_url, token = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + address[1:] if address.startswith("@") else address)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
print(json.dumps({"listening": address}), flush=True)
while True:
    data, ancillary, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(12))
    pid = uid = None
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid, uid, _gid = struct.unpack("3i", payload[:12])
    message = data.decode()
    health = None
    if "READY=1" in message.split("\n"):
        request = urllib.request.Request(health_url, headers={"Authorization": "Bearer " + token})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                health = response.status
        except Exception as err:
            health = str(err)
    print(json.dumps({"message": message, "pid": pid, "uid": uid, "health": health}), flush=True)
