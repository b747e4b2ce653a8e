"""liblanscape-sip from Python: SIP registration with a LanScape-shaped engine and a
profile registry, over the library's C ABI (loaded with ctypes from this package).

    from lanscape_sip import Engine, ReturnCode

    with Engine(local_ip="127.0.0.1") as engine:
        engine.add_credentials("alice", "secret")
        engine.register(["alice"], "sip.example.com", wait=True)   # raises SipError
        print(engine.state("alice"), engine.info("alice"))

Failures raise :class:`SipError`, whose ``code`` is the library's return value.
Notifications arrive on the library's event thread: as calls of ``on_notification``, and
in :attr:`Engine.notifications` (a queue) that :meth:`Engine.events` iterates.
"""

from __future__ import annotations

import ctypes
import enum
import queue
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional

from . import _native
from ._native import c, lib, text

__all__ = [
    "Engine",
    "Notification",
    "Profile",
    "ProfileEvent",
    "ProfileRegistry",
    "ProfileState",
    "RegistrationInfo",
    "RegistrationState",
    "ReturnCode",
    "SipError",
    "Transport",
]


class ReturnCode(enum.IntEnum):
    """`TELEPHONY_RETURN_VALUE`: return values and notification codes."""

    SipSuccess = 0
    SipCallFailure = 1
    SipBadParameter = 2
    SipInvalidHandle = 3
    SipProxyNotEnabled = 4
    SipUnknownHost = 5
    SipRegisterBadNameList = 6
    SipDomainNameNotDefined = 7
    SipRegisterError = 8
    SipRegisterTimeOut = 9
    SipRegisterAuthorizationError = 10
    SipRegisterIntervalError = 11
    SipThreadCreationError = 12
    SipSocketError = 13
    SipInternalError = 14
    SipRegisterSuccess = 15
    SipUnregistered = 16
    SipRegisterNameUnknown = 17
    SipProfileInUse = 18
    SipProfileNotFound = 19
    SipTransportNotSupported = 20
    SipTlsError = 21
    SipBufferTooSmall = 22


class RegistrationState(enum.IntEnum):
    UNREGISTERED = 0
    REGISTERING = 1
    REGISTERED = 2
    UNREGISTERING = 3
    RETRY_WAIT = 4


class ProfileState(enum.IntEnum):
    UNREGISTERED = 0
    REGISTERING = 1
    REGISTERED = 2
    UNREGISTERING = 3


class Transport(enum.IntEnum):
    UDP = 0
    TCP = 1
    TLS = 2
    AUTO = 3


class SipError(Exception):
    """A call failed: ``code`` is its return value, ``detail`` the library's words."""

    def __init__(self, code: int, detail: str = "") -> None:
        try:
            self.code: ReturnCode | int = ReturnCode(code)
        except ValueError:
            self.code = code
        self.detail = detail
        name = self.code.name if isinstance(self.code, ReturnCode) else str(code)
        super().__init__(f"{name}: {detail}" if detail else name)


def _check(rc: int) -> None:
    if rc != ReturnCode.SipSuccess:
        raise SipError(rc, text(lib.GetLastSipErrorText()))


@dataclass(frozen=True)
class Notification:
    """One registration notification: what happened to ``name`` (first phone ``line``, or -1)."""

    code: ReturnCode
    name: str
    line: int


@dataclass(frozen=True)
class RegistrationInfo:
    """The registration info query of one name (or profile)."""

    state: RegistrationState
    last_status: int
    reason: str
    granted_expires: int
    seconds_until_refresh: Optional[int]
    transport: Transport
    target: str
    target_port: int
    contact: str
    consecutive_failures: int
    outbound: bool
    flow_timer: int


def _deliver(events: "queue.Queue", handler: Optional[Callable], event: object) -> None:
    """Queues an event and calls the handler, on the library's event thread; an exception
    of the handler is reported, never raised into the library."""
    events.put(event)
    if handler is not None:
        try:
            handler(event)
        except Exception as e:
            print(f"lanscape_sip: an event handler raised {e!r}", file=sys.stderr)


def _next_matching(events: "queue.Queue", match: Callable[[object], bool], timeout: float, what: str):
    """The next queued event that matches (others are dropped); TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            event = events.get(timeout=left)
        except queue.Empty:
            break
        if match(event):
            return event
    raise TimeoutError(f"{what} within {timeout} s")


def _text_of(call: Callable[[Optional[ctypes.Array], int, ctypes.c_uint32], int]) -> str:
    """A text through the library's two-step convention (length, then the text)."""
    needed = ctypes.c_uint32(0)
    rc = call(None, 0, needed)
    if rc not in (ReturnCode.SipSuccess, ReturnCode.SipBufferTooSmall):
        _check(rc)
    buffer = ctypes.create_string_buffer(needed.value)
    _check(call(buffer, needed.value, needed))
    return text(buffer.value)


class Engine:
    """A LanScape telephony engine: one SIP port, its phone lines, the names it registers.

    A context manager: leaving it (or :meth:`close`) unregisters every name (waiting at
    most 4 s) and stops the engine.
    """

    def __init__(
        self,
        phone_name: str = "",
        lines: int = 1,
        port: int = 0,
        local_ip: Optional[str] = None,
        on_notification: Optional[Callable[[Notification], None]] = None,
    ) -> None:
        handle = _native.SIPHANDLE(0)
        _check(lib.StartSipTelephony(c(phone_name), lines, port, c(local_ip), ctypes.byref(handle)))
        self._handle: Optional[int] = handle.value
        self.notifications: "queue.Queue[Notification]" = queue.Queue()
        self.on_notification = on_notification
        # Kept referenced for as long as the library may call it.
        self._callback = _native.NOTIFY(self._on_native)
        _check(lib.SetNotificationCallback(self._handle, self._callback, None))

    def _on_native(self, _engine: int, code: int, name: bytes, line: int, _user: int) -> None:
        try:
            event = Notification(ReturnCode(code), text(name), line)
        except ValueError:
            return
        _deliver(self.notifications, self.on_notification, event)

    @property
    def handle(self) -> int:
        if self._handle is None:
            raise SipError(ReturnCode.SipInvalidHandle, "the engine is closed")
        return self._handle

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Unregisters every name and stops the engine (no notification after it)."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            _check(lib.StopSipTelephony(handle))

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    @property
    def local_port(self) -> int:
        port = ctypes.c_uint32(0)
        _check(lib.GetLocalSipPort(self.handle, ctypes.byref(port)))
        return port.value

    def set_domain(self, domain: Optional[str]) -> None:
        """The SIP domain of the addresses of record (None: the registrar's address)."""
        if domain is None:
            _check(lib.DisableSipDomain(self.handle))
        else:
            _check(lib.EnableSipDomain(self.handle, c(domain)))

    def set_proxy(self, address: Optional[str], port: int = 0) -> None:
        """The outbound proxy used with ``through_proxy`` (None removes it)."""
        if address is None:
            _check(lib.DisableSipProxyServer(self.handle))
        else:
            _check(lib.EnableSipProxyServer(self.handle, c(address), port))

    def add_credentials(self, user: str, password: str, realm: str = "*") -> None:
        _check(lib.AddAuthorizationCredentials(self.handle, c(user), c(password), c(realm)))

    def clear_credentials(self) -> None:
        _check(lib.ClearAuthorizationCredentials(self.handle))

    def set_transport(self, transport: Transport, local_port: int = 0) -> None:
        _check(lib.SetSipRegisterTransport(self.handle, int(transport), local_port))

    def trust(self, pem: str) -> None:
        """TLS trust anchors: PEM text or the path of a PEM file."""
        _check(lib.AddSipTlsTrustedCertificates(self.handle, c(pem)))

    def set_dns_servers(self, servers: Optional[str]) -> None:
        _check(lib.SetSipDnsServers(self.handle, c(servers or "")))

    def share_challenges(self, on: bool) -> None:
        """`EnableSipSharedChallenges`: the names of each later :meth:`register` answer the
        challenge another of them received, one REGISTER per name instead of two (for
        registrars that accept a realm's nonce from any user; sharing ends at one that
        refuses such answers)."""
        _check(lib.EnableSipSharedChallenges(self.handle, int(on)))

    def set_unregister_timeout(self, timeout_ms: int) -> None:
        """`SetSipUnregisterTimeout`: how long stopping waits at most for unregistrations."""
        _check(lib.SetSipUnregisterTimeout(self.handle, timeout_ms))

    def register(
        self,
        names: Iterable[str] | str,
        server: str,
        port: int = 0,
        *,
        per_line: bool = False,
        through_proxy: bool = False,
        interval: int = 300,
        expires: int = 3600,
        timeout_ms: int = 0,
        nat: bool = False,
        wait: bool = False,
    ) -> None:
        """`EnableSipRegisterServer`. With ``wait``, returns once every name's first register
        cycle ended, raising :class:`SipError` with the first failure's code."""
        listed = names if isinstance(names, str) else ",".join(names)
        _check(lib.EnableSipRegisterWaitMode(self.handle, int(wait)))
        _check(
            lib.EnableSipRegisterServer(
                self.handle, c(listed), int(per_line), int(through_proxy), c(server), port,
                interval, expires, timeout_ms, int(nat),
            )
        )

    def unregister(self) -> None:
        """`DisableSipRegisterServer`: every name unregisters; `SipUnregistered` follows."""
        _check(lib.DisableSipRegisterServer(self.handle))

    def state(self, name: str) -> RegistrationState:
        state = ctypes.c_int(0)
        _check(lib.GetSipRegistrationState(self.handle, c(name), ctypes.byref(state)))
        return RegistrationState(state.value)

    def info(self, name: str) -> RegistrationInfo:
        raw = _native.RegistrationInfoStruct()
        _check(lib.GetSipRegistrationInfo(self.handle, c(name), ctypes.byref(raw)))

        def text_of(which: int) -> str:
            return _text_of(lambda buf, cap, req: lib.GetSipRegistrationText(self.handle, c(name), which, buf, cap, ctypes.byref(req)))

        return _info(raw, reason=text_of(0), contact=text_of(1), target=text_of(2))

    def keep_alive(self, interval: Optional[int]) -> None:
        """CRLF keep-alives to every registrar or proxy every ``interval`` s (None: off)."""
        _check(lib.EnableKeepAliveTransmissions(self.handle, interval or 0))

    def send_keep_alive(self, host: str, port: int = 0, enable: bool = True, seconds: int = 30) -> None:
        """LanScape's SendSipKeepAlive: CRLF to host:port at once and every ``seconds``."""
        _check(lib.SendSipKeepAliveEx(self.handle, c(host), port, int(enable), seconds))

    def events(self, timeout: Optional[float] = None) -> Iterator[Notification]:
        """Notifications as they arrive; ends after ``timeout`` s without one (None: never)."""
        while True:
            try:
                yield self.notifications.get(timeout=timeout)
            except queue.Empty:
                return

    def wait_for(self, code: ReturnCode, name: str, timeout: float = 10.0) -> Notification:
        """The next notification ``code`` for ``name`` (others are skipped); TimeoutError."""
        return _next_matching(
            self.notifications, lambda e: e.code == code and e.name == name, timeout,
            f"no {code.name} for {name}",
        )


def _info(raw: _native.RegistrationInfoStruct, *, reason: str, contact: str, target: str) -> RegistrationInfo:
    return RegistrationInfo(
        state=RegistrationState(raw.state),
        last_status=raw.last_status,
        reason=reason,
        granted_expires=raw.granted_expires,
        seconds_until_refresh=None if raw.seconds_until_refresh < 0 else raw.seconds_until_refresh,
        transport=Transport(raw.transport),
        target=target,
        target_port=raw.target_port,
        contact=contact,
        consecutive_failures=raw.consecutive_failures,
        outbound=bool(raw.outbound),
        flow_timer=raw.flow_timer,
    )


@dataclass(frozen=True)
class ProfileEvent:
    """A profile's new state, or (with ``error`` set) an asynchronous error of it."""

    profile_id: int
    state: Optional[ProfileState] = None
    error: Optional[ReturnCode] = None


class Profile:
    """A handle of one profile: registered while enabled through it. A context manager
    (leaving it releases the handle)."""

    def __init__(self, profile_id: int, handle: int) -> None:
        self.id = profile_id
        self._handle: Optional[int] = handle

    def __enter__(self) -> "Profile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _h(self) -> int:
        if self._handle is None:
            raise SipError(ReturnCode.SipInvalidHandle, "the profile handle is released")
        return self._handle

    def enable(self) -> None:
        _check(lib.SipProfileEnable(self._h()))

    def disable(self) -> None:
        _check(lib.SipProfileDisable(self._h()))

    @property
    def state(self) -> ProfileState:
        state = ctypes.c_int(0)
        _check(lib.SipProfileGetState(self._h(), ctypes.byref(state)))
        return ProfileState(state.value)

    def release(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            _check(lib.SipProfileRelease(handle))


class ProfileRegistry:
    """A registry on the process's one registration service. A context manager: leaving it
    closes the registry (profiles no other handle keeps enabled unregister).

    State changes and errors go to :attr:`events` (a queue) and to ``on_event``.
    """

    def __init__(self, on_event: Optional[Callable[[ProfileEvent], None]] = None) -> None:
        self.events: "queue.Queue[ProfileEvent]" = queue.Queue()
        self.on_event = on_event
        self._on_state = _native.PROFILE_CALLBACK(self._state)
        self._on_error = _native.PROFILE_CALLBACK(self._error)
        handle = ctypes.c_uint64(0)
        _check(lib.SipRegistryOpen(self._on_state, self._on_error, None, ctypes.byref(handle)))
        self._handle: Optional[int] = handle.value

    def _state(self, _registry: int, profile: int, state: int, _user: int) -> None:
        _deliver(self.events, self.on_event, ProfileEvent(profile, state=ProfileState(state)))

    def _error(self, _registry: int, profile: int, error: int, _user: int) -> None:
        _deliver(self.events, self.on_event, ProfileEvent(profile, error=ReturnCode(error)))

    def __enter__(self) -> "ProfileRegistry":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _h(self) -> int:
        if self._handle is None:
            raise SipError(ReturnCode.SipInvalidHandle, "the registry is closed")
        return self._handle

    def close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            _check(lib.SipRegistryClose(handle))

    def set_close_timeout(self, timeout_ms: int) -> None:
        """`SipRegistrySetCloseTimeout`: how long closing the last registry waits at most
        for unregistrations (for the whole process)."""
        _check(lib.SipRegistrySetCloseTimeout(self._h(), timeout_ms))

    def create(
        self,
        aor: str,
        registrar: str,
        *,
        proxy: Optional[str] = None,
        user: Optional[str] = None,
        password: Optional[str] = None,
        expires: int = 3600,
        transport: Transport = Transport.UDP,
        trusted_pem: Optional[str] = None,
        system_trust: bool = True,
    ) -> int:
        """Creates a profile (``aor`` is user@domain, ``registrar`` host[:port]); its id."""
        profile_id = ctypes.c_uint32(0)
        _check(
            lib.SipProfileCreate(
                self._h(), c(aor), c(registrar), c(proxy), c(user), c(password), expires,
                int(transport), ctypes.byref(profile_id),
            )
        )
        if trusted_pem is not None or not system_trust:
            _check(lib.SipProfileSetTls(self._h(), profile_id.value, c(trusted_pem), int(system_trust), None, None))
        return profile_id.value

    def retrieve(self, profile_id: int) -> Profile:
        handle = ctypes.c_uint64(0)
        _check(lib.SipProfileRetrieve(self._h(), profile_id, ctypes.byref(handle)))
        return Profile(profile_id, handle.value)

    def remove(self, profile_id: int) -> None:
        _check(lib.SipProfileRemove(self._h(), profile_id))

    def wait_for(self, profile_id: int, state: ProfileState, timeout: float = 10.0) -> ProfileEvent:
        """The next event of ``profile_id`` reaching ``state``; TimeoutError."""
        return _next_matching(
            self.events, lambda e: e.profile_id == profile_id and e.state == state, timeout,
            f"profile {profile_id} not {state.name}",
        )
