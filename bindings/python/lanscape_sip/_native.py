"""The C ABI of liblanscape_sip, loaded with ctypes: signatures and the library's path."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

SIPHANDLE = ctypes.c_uint64
NOTIFY = ctypes.CFUNCTYPE(None, SIPHANDLE, ctypes.c_int, ctypes.c_char_p, ctypes.c_int32, ctypes.c_void_p)
PROFILE_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_int, ctypes.c_void_p)
LOG = ctypes.CFUNCTYPE(None, SIPHANDLE, ctypes.c_int32, ctypes.c_char_p, ctypes.c_void_p)

#: The ABI this package is written for (`LANSCAPE_SIP_ABI_VERSION`).
ABI_VERSION = 2


class RegistrationInfoStruct(ctypes.Structure):
    _fields_ = [
        ("state", ctypes.c_int),
        ("last_status", ctypes.c_uint32),
        ("granted_expires", ctypes.c_uint32),
        ("seconds_until_refresh", ctypes.c_int32),
        ("transport", ctypes.c_uint32),
        ("target_port", ctypes.c_uint32),
        ("consecutive_failures", ctypes.c_uint32),
        ("outbound", ctypes.c_int32),
        ("flow_timer", ctypes.c_uint32),
    ]


_c = ctypes
_u32, _i32, _s, _u64 = _c.c_uint32, _c.c_int32, _c.c_char_p, _c.c_uint64
_SIGNATURES = {
    "LanScapeSipAbiVersion": (_u32, []),
    "TelephonyReturnValueText": (_s, [_i32]),
    "GetLastSipErrorText": (_s, []),
    "StartSipTelephony": (_c.c_int, [_s, _u32, _u32, _s, _c.POINTER(SIPHANDLE)]),
    "StopSipTelephony": (_c.c_int, [SIPHANDLE]),
    "SetNotificationCallback": (_c.c_int, [SIPHANDLE, NOTIFY, _c.c_void_p]),
    "SetLogCallback": (_c.c_int, [SIPHANDLE, LOG, _c.c_void_p]),
    "GetLocalSipPort": (_c.c_int, [SIPHANDLE, _c.POINTER(_u32)]),
    "EnableSipDomain": (_c.c_int, [SIPHANDLE, _s]),
    "DisableSipDomain": (_c.c_int, [SIPHANDLE]),
    "EnableSipProxyServer": (_c.c_int, [SIPHANDLE, _s, _u32]),
    "DisableSipProxyServer": (_c.c_int, [SIPHANDLE]),
    "AddAuthorizationCredentials": (_c.c_int, [SIPHANDLE, _s, _s, _s]),
    "ClearAuthorizationCredentials": (_c.c_int, [SIPHANDLE]),
    "SetSipRegisterTransport": (_c.c_int, [SIPHANDLE, _u32, _u32]),
    "SetSipDnsServers": (_c.c_int, [SIPHANDLE, _s]),
    "AddSipTlsTrustedCertificates": (_c.c_int, [SIPHANDLE, _s]),
    "EnableSipRegisterWaitMode": (_c.c_int, [SIPHANDLE, _i32]),
    "EnableSipSharedChallenges": (_c.c_int, [SIPHANDLE, _i32]),
    "SetSipUnregisterTimeout": (_c.c_int, [SIPHANDLE, _u32]),
    "EnableSipRegisterServer": (_c.c_int, [SIPHANDLE, _s, _i32, _i32, _s, _u32, _u32, _u32, _u32, _i32]),
    "DisableSipRegisterServer": (_c.c_int, [SIPHANDLE]),
    "GetSipRegistrationState": (_c.c_int, [SIPHANDLE, _s, _c.POINTER(_c.c_int)]),
    "GetSipRegistrationInfo": (_c.c_int, [SIPHANDLE, _s, _c.POINTER(RegistrationInfoStruct)]),
    "GetSipRegistrationText": (_c.c_int, [SIPHANDLE, _s, _u32, _c.c_char_p, _u32, _c.POINTER(_u32)]),
    "EnableKeepAliveTransmissions": (_c.c_int, [SIPHANDLE, _u32]),
    "SendSipKeepAliveEx": (_c.c_int, [SIPHANDLE, _s, _u32, _i32, _i32]),
    "SipRegistryOpen": (_c.c_int, [PROFILE_CALLBACK, PROFILE_CALLBACK, _c.c_void_p, _c.POINTER(_u64)]),
    "SipRegistryClose": (_c.c_int, [_u64]),
    "SipRegistrySetCloseTimeout": (_c.c_int, [_u64, _u32]),
    "SipProfileCreate": (_c.c_int, [_u64, _s, _s, _s, _s, _s, _u32, _u32, _c.POINTER(_u32)]),
    "SipProfileSetTls": (_c.c_int, [_u64, _u32, _s, _i32, _s, _s]),
    "SipProfileRetrieve": (_c.c_int, [_u64, _u32, _c.POINTER(_u64)]),
    "SipProfileRelease": (_c.c_int, [_u64]),
    "SipProfileEnable": (_c.c_int, [_u64]),
    "SipProfileDisable": (_c.c_int, [_u64]),
    "SipProfileGetState": (_c.c_int, [_u64, _c.POINTER(_c.c_int)]),
    "SipProfileGetInfo": (_c.c_int, [_u64, _c.POINTER(RegistrationInfoStruct)]),
    "SipProfileRemove": (_c.c_int, [_u64, _u32]),
}


def library_path() -> str:
    """The shared library: `LANSCAPE_SIP_LIBRARY` if set, else the one in this package."""
    override = os.environ.get("LANSCAPE_SIP_LIBRARY")
    if override:
        return override
    return str(Path(__file__).with_name("liblanscape_sip.so"))


def load() -> ctypes.CDLL:
    lib = ctypes.CDLL(library_path())
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    version = lib.LanScapeSipAbiVersion()
    if version != ABI_VERSION:
        raise ImportError(f"{library_path()} has ABI {version}; this package needs {ABI_VERSION}")
    return lib


lib = load()


def text(value: bytes | None) -> str:
    return value.decode("utf-8", "replace") if value else ""


def c(value: str | None) -> bytes | None:
    """A NUL-free UTF-8 argument; None stays NULL."""
    return None if value is None else value.encode("utf-8")
