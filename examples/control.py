#!/usr/bin/env python3
"""Drive netfailover's control socket from a supervisor script (protocol: docs/control.md).

Asks for the protocol version and the status, then follows every change, keeping its own
view of the interfaces up to date from the snapshot and the events, and prints one line per
change. Standard library only; run as root (the socket is root only):

    sudo python3 examples/control.py [--socket /run/netfailover.sock] [--count N]
"""

import argparse
import json
import socket
import sys

SUPPORTED_PROTOCOL = 1


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s, s.makefile("rwb")


def ask(path, request):
    """One request, one reply line: returns `data` or raises with the daemon's error."""
    s, f = connect(path)
    with s:
        f.write(json.dumps(request).encode() + b"\n")
        f.flush()
        reply = json.loads(f.readline())
    if not reply["ok"]:
        raise RuntimeError(reply["error"])
    return reply["data"]


def follow(path, count):
    """Prints the snapshot, then each change; stops after `count` changes (0: never)."""
    s, f = connect(path)
    s.settimeout(None)  # changes may be hours apart
    f.write(b'{"cmd":"follow"}\n')
    f.flush()
    view = {}  # interface name -> its status entry, kept current from the stream
    seen = 0
    for raw in f:
        line = json.loads(raw)
        kind = line.get("type")
        if kind is None:  # {"ok":false,...}: the daemon refused
            raise RuntimeError(line.get("error"))
        if kind == "snapshot":
            if line["protocol"] != SUPPORTED_PROTOCOL:
                print(f"warning: protocol {line['protocol']}, this script knows {SUPPORTED_PROTOCOL}")
            view = {i["name"]: i for i in line["status"]["interfaces"]}
            print(f"snapshot: global {line['status']['connectivity']}, "
                  f"{len(view)} interfaces, {len(line['events'])} recent events")
            continue
        seen += 1
        if kind == "interface-added":
            view[line["status"]["name"]] = line["status"]
        elif kind == "interface-removed":
            view.pop(line["iface"], None)
        elif kind == "link":
            view[line["iface"]]["link"] = line["link"]
        elif kind == "connectivity":
            view[line["iface"]]["connectivity"] = line["state"]
        elif kind == "route":
            key = "effective_metric" if line["family"] == "V4" else "effective_metric6"
            view[line["iface"]][key] = line["new_metric"]
        elif kind == "event":
            print(f"  dispatcher event {line['id']}: {line['kind']} {line['iface'] or '-'} "
                  f"{line['previous']} -> {line['state']} ({line['reason']})")
        elif kind == "script":
            print(f"  event {line['event_id']}: {line['script']} {line['result']} "
                  f"{line.get('code', '')} in {line['duration_ms']} ms")
        elif kind == "lagged":
            print(f"  fell behind by {line['count']} changes; a fresh snapshot follows")
        elif kind == "stopped":
            print("the daemon stopped")
            return
        else:
            print(f"  {kind}: {json.dumps(line)}")
        if kind in ("link", "connectivity", "route"):
            i = view[line["iface"]]
            print(f"  {i['name']}: link {i['link']}, {i['connectivity']}, "
                  f"metric {i['effective_metric']}")
        if count and seen >= count:
            return


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", default="/run/netfailover.sock")
    parser.add_argument("--count", type=int, default=0, help="stop after N changes")
    args = parser.parse_args()
    try:
        version = ask(args.socket, {"cmd": "version"})
        print(f"netfailover {version['version']}, protocol {version['protocol']}")
        status = ask(args.socket, {"cmd": "status"})
        for i in status["interfaces"]:
            print(f"{i['name']}: link {i['link']}, {i['connectivity']}, "
                  f"metric {i['effective_metric']}")
        follow(args.socket, args.count)
    except (OSError, RuntimeError) as e:
        sys.exit(f"control.py: {e}")
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
