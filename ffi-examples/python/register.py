#!/usr/bin/env python3
"""Registers through liblanscape-sip loaded with ctypes (dlopen), with both APIs.

    register.py LIBRARY HOST PORT [--tls CA_FILE]

With --tls both APIs register over TLS, trusting the CA in CA_FILE.

Exits 0 when every expected notification arrived.
"""
import ctypes
import sys
import threading

SipSuccess, SipRegisterBadNameList, SipRegisterSuccess, SipUnregistered = 0, 6, 15, 16
SipProfileRegistered, SipProfileUnregistered = 2, 0
SipTransportUdp, SipTransportTls = 0, 2

SIPHANDLE = ctypes.c_uint64
NOTIFY = ctypes.CFUNCTYPE(None, SIPHANDLE, ctypes.c_int, ctypes.c_char_p, ctypes.c_int32, ctypes.c_void_p)
PROFILE_STATE = ctypes.CFUNCTYPE(None, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_int, ctypes.c_void_p)
PROFILE_ERROR = ctypes.CFUNCTYPE(None, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_int, ctypes.c_void_p)


def load(path):
    lib = ctypes.CDLL(path)
    signatures = {
        "LanScapeSipAbiVersion": (ctypes.c_uint32, []),
        "TelephonyReturnValueText": (ctypes.c_char_p, [ctypes.c_int32]),
        "GetLastSipErrorText": (ctypes.c_char_p, []),
        "StartSipTelephony": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_uint32, ctypes.c_uint32,
                                             ctypes.c_char_p, ctypes.POINTER(SIPHANDLE)]),
        "StopSipTelephony": (ctypes.c_int, [SIPHANDLE]),
        "SetNotificationCallback": (ctypes.c_int, [SIPHANDLE, NOTIFY, ctypes.c_void_p]),
        "EnableSipRegisterServer": (ctypes.c_int, [SIPHANDLE, ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32,
                                                   ctypes.c_char_p, ctypes.c_uint32, ctypes.c_uint32,
                                                   ctypes.c_uint32, ctypes.c_uint32, ctypes.c_int32]),
        "SipRegistryOpen": (ctypes.c_int, [PROFILE_STATE, PROFILE_ERROR, ctypes.c_void_p,
                                           ctypes.POINTER(ctypes.c_uint64)]),
        "SipRegistryClose": (ctypes.c_int, [ctypes.c_uint64]),
        "SipProfileCreate": (ctypes.c_int, [ctypes.c_uint64, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                            ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint32, ctypes.c_uint32,
                                            ctypes.POINTER(ctypes.c_uint32)]),
        "SipProfileRetrieve": (ctypes.c_int, [ctypes.c_uint64, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint64)]),
        "SipProfileEnable": (ctypes.c_int, [ctypes.c_uint64]),
        "SipProfileDisable": (ctypes.c_int, [ctypes.c_uint64]),
        "SetSipRegisterTransport": (ctypes.c_int, [SIPHANDLE, ctypes.c_uint32, ctypes.c_uint32]),
        "AddSipTlsTrustedCertificates": (ctypes.c_int, [SIPHANDLE, ctypes.c_char_p]),
        "SipProfileSetTls": (ctypes.c_int, [ctypes.c_uint64, ctypes.c_uint32, ctypes.c_char_p, ctypes.c_int32,
                                            ctypes.c_char_p, ctypes.c_char_p]),
    }
    for name, (restype, argtypes) in signatures.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


class Events:
    """Notifications, collected from the library's thread."""

    def __init__(self):
        self.seen = []
        self.cond = threading.Condition()

    def add(self, item):
        print("event", item, flush=True)
        with self.cond:
            self.seen.append(item)
            self.cond.notify_all()

    def wait(self, item, timeout=10):
        with self.cond:
            return self.cond.wait_for(lambda: item in self.seen, timeout)


def check(lib, what, rc, want=SipSuccess):
    if rc != want:
        raise SystemExit(f"{what}: {lib.TelephonyReturnValueText(rc).decode()} "
                         f"({lib.GetLastSipErrorText().decode()})")


def main():
    tls = len(sys.argv) == 6 and sys.argv[4] == "--tls"
    if len(sys.argv) != 4 and not tls:
        raise SystemExit(f"usage: {sys.argv[0]} LIBRARY HOST PORT [--tls CA_FILE]")
    lib = load(sys.argv[1])
    host, port = sys.argv[2].encode(), int(sys.argv[3])
    transport = SipTransportTls if tls else SipTransportUdp
    ca_file = sys.argv[5].encode() if tls else None
    events = Events()

    # The ctypes callbacks must stay referenced as long as the library may call them.
    on_notify = NOTIFY(lambda engine, event, name, line, user: events.add((event, name.decode())))
    engine = SIPHANDLE()
    check(lib, "start", lib.StartSipTelephony(b"python example", 1, 0, b"127.0.0.1", ctypes.byref(engine)))
    check(lib, "callback", lib.SetNotificationCallback(engine, on_notify, None))
    check(lib, "transport", lib.SetSipRegisterTransport(engine, transport, 0))
    if tls:
        check(lib, "trust", lib.AddSipTlsTrustedCertificates(engine, ca_file))
    check(lib, "bad names", lib.EnableSipRegisterServer(engine, b" , ", 0, 0, host, port, 60, 300, 4000, 0),
          SipRegisterBadNameList)
    check(lib, "enable", lib.EnableSipRegisterServer(engine, b"py-alice", 0, 0, host, port, 60, 300, 4000, 0))
    if not events.wait((SipRegisterSuccess, "py-alice")):
        raise SystemExit("py-alice did not register")
    check(lib, "stop", lib.StopSipTelephony(engine))
    if (SipUnregistered, "py-alice") not in events.seen:
        raise SystemExit("py-alice was not unregistered before StopSipTelephony returned")

    on_state = PROFILE_STATE(lambda reg, pid, state, user: events.add(("profile", pid, state)))
    on_error = PROFILE_ERROR(lambda reg, pid, error, user: events.add(("profile error", pid, error)))
    registry, profile, pid = ctypes.c_uint64(), ctypes.c_uint64(), ctypes.c_uint32()
    check(lib, "open", lib.SipRegistryOpen(on_state, on_error, None, ctypes.byref(registry)))
    check(lib, "create", lib.SipProfileCreate(registry, b"py-bob@" + host, host + b":" + str(port).encode(),
                                              None, None, None, 600, transport, ctypes.byref(pid)))
    if tls:
        check(lib, "profile trust", lib.SipProfileSetTls(registry, pid, ca_file, 1, None, None))
    check(lib, "retrieve", lib.SipProfileRetrieve(registry, pid, ctypes.byref(profile)))
    check(lib, "enable profile", lib.SipProfileEnable(profile))
    if not events.wait(("profile", pid.value, SipProfileRegistered)):
        raise SystemExit("the profile did not register")
    check(lib, "disable profile", lib.SipProfileDisable(profile))
    if not events.wait(("profile", pid.value, SipProfileUnregistered)):
        raise SystemExit("the profile did not unregister")
    check(lib, "close", lib.SipRegistryClose(registry))
    print("Python example OK")


if __name__ == "__main__":
    main()
