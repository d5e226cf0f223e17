#!/usr/bin/python3
"""Reads NetworkManager keyfiles with libnm, exactly as NetworkManager 1.42's keyfile plugin
loads a file from /etc/NetworkManager/system-connections, and prints what it decided as JSON.

Used by the differential test (tests/it/config.rs, `differential`), which compares it with
`netfailover check-config --json` for every file of tests/data/nm-corpus/. Steps, as in NM's
src/core/settings/plugins/keyfile/nms-keyfile-reader.c (nms_keyfile_reader_from_file):
GKeyFile load -> nm_keyfile_read() -> id from the file name (minus .nmconnection) when absent
-> nm_connection_normalize(). A file NM would not even open (nm_keyfile_utils_ignore_filename()
for /etc, which libnm does not export) is marked "ignored" by the same rule, written out below.

Usage: libnm_read.py FILE...   (run with Debian's /usr/bin/python3: python3-gi, gir1.2-nm-1.0)
Output: one JSON array, one object per FILE, in argument order.
"""
import json
import os
import string
import sys

import gi

gi.require_version("NM", "1.0")
from gi.repository import GLib, NM  # noqa: E402

TEMP_LETTERS = set(string.ascii_letters + string.digits)

# connection.type (setting name) -> the short name nmcli shows.
SHORT_TYPE = {
    "802-3-ethernet": "ethernet",
    "802-11-wireless": "wifi",
    "802-11-olpc-mesh": "olpc-mesh",
}

# NM 1.42 nm_device_get_route_metric_default() (src/core/devices/nm-device.c), keyed by the
# connection type whose device type it is.
TYPE_METRIC = {
    "loopback": 30, "wireguard": 50, "vpn": 50, "ethernet": 100, "veth": 100, "macsec": 125,
    "infiniband": 150, "adsl": 200, "wimax": 250, "bond": 300, "team": 350, "vlan": 400,
    "macvlan": 410, "bridge": 425, "tun": 450, "pppoe": 460, "vrf": 470, "vxlan": 500,
    "dummy": 550, "wifi": 600, "olpc-mesh": 650, "ip-tunnel": 675, "gsm": 700, "cdma": 700,
    "bluetooth": 750, "6lowpan": 775, "ovs-bridge": 800, "ovs-interface": 800,
    "ovs-port": 800, "wpan": 850, "wifi-p2p": 950, "generic": 950,
}


def ignored(name):
    """nm_keyfile_utils_ignore_filename(name, require_extension=FALSE) of NM 1.42."""
    if not name or name.startswith("."):
        return True
    if name.endswith("~"):
        return True
    dot = name.rfind(".")
    if dot >= 0:
        tail = name[dot + 1:]
        if len(tail) == 6 and all(c in TEMP_LETTERS for c in tail):
            return True
    low = name.lower()
    for tag in (".pem", ".der"):
        if low.endswith(tag) and len(name) > len(tag):
            return True
    return False


def family(conn, setting):
    if setting is None:
        return None
    routes = []
    for i in range(setting.get_num_routes()):
        r = setting.get_route(i)
        routes.append({"dest": "%s/%d" % (r.get_dest(), r.get_prefix()),
                       "next_hop": r.get_next_hop(), "metric": r.get_metric()})
    return {
        "method": setting.get_method(),
        "never_default": setting.get_never_default(),
        "route_metric": setting.get_route_metric(),
        "addresses": ["%s/%d" % (a.get_address(), a.get_prefix())
                      for a in (setting.get_address(i)
                                for i in range(setting.get_num_addresses()))],
        "gateway": setting.get_gateway(),
        "dns": [setting.get_dns(i) for i in range(setting.get_num_dns())],
        "routes": routes,
    }


def read(path):
    name = os.path.basename(path)
    out = {"file": name, "ignored": ignored(name), "error": None, "warnings": []}
    if out["ignored"]:
        return out
    kf = GLib.KeyFile()
    try:
        kf.load_from_file(path, GLib.KeyFileFlags.NONE)
    except GLib.Error as e:
        out["error"] = "keyfile: " + e.message
        return out
    try:
        had_uuid = bool(kf.get_string("connection", "uuid"))
    except GLib.Error:
        had_uuid = False

    def handler(_kf, _conn, kind, data, *_):
        if kind == NM.KeyfileHandlerType.WARN:
            warn = data.warn_get()
            out["warnings"].append(warn.out_message)
        return False

    try:
        conn = NM.keyfile_read(kf, os.path.dirname(os.path.abspath(path)),
                               NM.KeyfileHandlerFlags.NONE, handler, None)
    except GLib.Error as e:
        out["error"] = "read: " + e.message
        return out
    s_con = conn.get_setting_connection()
    if s_con is not None and not s_con.get_id():
        stem = name[:-len(".nmconnection")] if name.endswith(".nmconnection") and \
            len(name) > len(".nmconnection") else name
        s_con.set_property("id", stem)
    if s_con is not None and not s_con.get_uuid():
        # NM derives a UUID from the path (nm_keyfile_read_ensure_uuid); only its presence
        # matters for normalize, netfailover reports none.
        s_con.set_property("uuid", "00000000-0000-4000-8000-000000000000")
    try:
        conn.normalize()
    except GLib.Error as e:
        out["error"] = "normalize: " + e.message
        return out
    s_con = conn.get_setting_connection()
    ctype = s_con.get_connection_type()
    short = SHORT_TYPE.get(ctype, ctype)
    mac = None
    for s in (conn.get_setting_wired(), conn.get_setting_wireless()):
        if s is not None and s.get_mac_address():
            mac = s.get_mac_address().lower()
    wifi = conn.get_setting_wireless()
    vlan = conn.get_setting_vlan()
    out.update({
        "id": s_con.get_id(),
        "uuid": s_con.get_uuid() if had_uuid else None,
        "type": short,
        "interface_name": s_con.get_interface_name(),
        "mac": mac,
        "master": s_con.get_master(),
        "slave_type": s_con.get_slave_type(),
        "autoconnect": s_con.get_autoconnect(),
        "autoconnect_priority": s_con.get_autoconnect_priority(),
        # NMMetered: 0 unknown, 1 yes, 2 no.
        "metered": int(s_con.get_metered()),
        "wifi_mode": wifi.get_mode() if wifi is not None else None,
        "vlan_parent": vlan.get_parent() if vlan is not None else None,
        "vlan_id": vlan.get_id() if vlan is not None else None,
        "type_metric": TYPE_METRIC.get(short),
        "ipv4": family(conn, conn.get_setting_ip4_config()),
        "ipv6": family(conn, conn.get_setting_ip6_config()),
    })
    return out


def main(argv):
    print(json.dumps([read(p) for p in argv[1:]], indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
