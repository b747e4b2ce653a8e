"""Uses the installed `lanscape_sip` package as an application would, against Kamailio.
Run by tests/python_package.rs inside a virtual environment:

    python use_package.py HOST PORT DOMAIN USER PASSWORD
"""

import sys

from lanscape_sip import (
    Engine,
    ProfileRegistry,
    ProfileState,
    RegistrationState,
    ReturnCode,
    SipError,
    Transport,
)


def codes_are_the_librarys() -> None:
    from lanscape_sip._native import lib, text

    for code in ReturnCode:
        assert text(lib.TelephonyReturnValueText(code)) == code.name, code
    assert text(lib.TelephonyReturnValueText(len(ReturnCode))) == "unknown", "codes missing here"


def main(host: str, port: int, domain: str, user: str, password: str) -> None:
    codes_are_the_librarys()
    seen = []
    with Engine("python package", lines=2, local_ip="127.0.0.1", on_notification=seen.append) as engine:
        engine.set_domain(domain)
        engine.add_credentials(user, "wrong")
        try:
            engine.register(["alice", "bob"], host, port, per_line=True, timeout_ms=2000, wait=True)
            raise SystemExit("a wrong password registered")
        except SipError as e:
            assert e.code == ReturnCode.SipRegisterAuthorizationError, e
            print("refused:", e)
        engine.clear_credentials()
        engine.add_credentials(user, password)
        # Kamailio takes a realm's nonce from any user: sharing changes no outcome.
        engine.share_challenges(True)
        engine.register(["alice", "bob"], host, port, per_line=True, timeout_ms=2000, wait=True)
        assert engine.state("alice") == RegistrationState.REGISTERED
        info = engine.info("bob")
        assert info.last_status == 200 and info.transport == Transport.UDP, info
        assert info.granted_expires > 0 and info.contact.startswith("sip:bob@127.0.0.1:"), info
        print("info:", info)
        registered = {e.name for e in seen if e.code == ReturnCode.SipRegisterSuccess}
        assert registered == {"alice", "bob"}, seen
        engine.send_keep_alive(host, port, True, 30)
        engine.set_unregister_timeout(3000)
        try:
            engine.set_unregister_timeout(10)
            raise SystemExit("a 10 ms unregistration wait was accepted")
        except SipError as e:
            assert e.code == ReturnCode.SipBadParameter, e
        engine.unregister()
        engine.wait_for(ReturnCode.SipUnregistered, "alice")
        engine.wait_for(ReturnCode.SipUnregistered, "bob")
        try:
            engine.state("carol")
            raise SystemExit("an unknown name has a state")
        except SipError as e:
            assert e.code == ReturnCode.SipRegisterNameUnknown, e
    try:
        engine.state("alice")
        raise SystemExit("a closed engine answered")
    except SipError as e:
        assert e.code == ReturnCode.SipInvalidHandle

    with ProfileRegistry() as registry:
        registry.set_close_timeout(3000)
        profile_id = registry.create(f"carol@{domain}", f"{host}:{port}", user=user, password=password, expires=300)
        with registry.retrieve(profile_id) as profile:
            profile.enable()
            registry.wait_for(profile_id, ProfileState.REGISTERED)
            assert profile.state == ProfileState.REGISTERED
            profile.disable()
            registry.wait_for(profile_id, ProfileState.UNREGISTERED)
        registry.remove(profile_id)
        try:
            registry.retrieve(profile_id)
            raise SystemExit("a removed profile was retrieved")
        except SipError as e:
            assert e.code == ReturnCode.SipProfileNotFound, e
    print("python package OK")


if __name__ == "__main__":
    host, port, domain, user, password = sys.argv[1:]
    main(host, int(port), domain, user, password)
