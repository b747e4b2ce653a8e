// A small RAII wrapper over liblanscape-sip's C ABI: handles close themselves, errors
// become exceptions, callbacks are std::function.
#pragma once

#include "lanscape_sip.h"

#include <functional>
#include <stdexcept>
#include <string>
#include <utility>

namespace lanscape {

/// A failed call: the code and the library's explanation.
class Error : public std::runtime_error {
public:
    Error(const char *what, TELEPHONY_RETURN_VALUE code)
        : std::runtime_error(std::string(what) + ": " + TelephonyReturnValueText(code) + " (" +
                             GetLastSipErrorText() + ")"),
          code_(code) {}
    TELEPHONY_RETURN_VALUE code() const { return code_; }

private:
    TELEPHONY_RETURN_VALUE code_;
};

inline void check(const char *what, TELEPHONY_RETURN_VALUE rc) {
    if (rc != SipSuccess)
        throw Error(what, rc);
}

/// One telephony engine (StartSipTelephony / StopSipTelephony).
class Engine {
public:
    using Listener = std::function<void(TELEPHONY_RETURN_VALUE, const std::string &, int)>;

    Engine(const std::string &phone_name, uint32_t lines, uint32_t port = 0,
           const char *local_ip = nullptr) {
        check("StartSipTelephony",
              StartSipTelephony(phone_name.c_str(), lines, port, local_ip, &handle_));
    }
    ~Engine() {
        if (handle_)
            StopSipTelephony(handle_);
    }
    Engine(const Engine &) = delete;
    Engine &operator=(const Engine &) = delete;
    Engine(Engine &&other) noexcept
        : handle_(std::exchange(other.handle_, 0)), listener_(std::move(other.listener_)) {
        rebind();
    }

    /// Called on the engine's thread for every notification.
    void on_notification(Listener listener) {
        listener_ = std::move(listener);
        rebind();
    }
    void credentials(const std::string &realm, const std::string &user, const std::string &pw) {
        check("AddAuthorizationCredentials",
              AddAuthorizationCredentials(handle_, user.c_str(), pw.c_str(), realm.c_str()));
    }
    /* UDP (the default), TCP or TLS for the registrations that follow. */
    void transport(SIP_TRANSPORT transport, uint32_t local_port = 0) {
        check("SetSipRegisterTransport", SetSipRegisterTransport(handle_, transport, local_port));
    }
    /* Trusts the CA certificates of a PEM file (or PEM text) for TLS. */
    void trust(const std::string &pem) {
        check("AddSipTlsTrustedCertificates", AddSipTlsTrustedCertificates(handle_, pem.c_str()));
    }
    void register_names(const std::string &names, const std::string &server, uint32_t port,
                        uint32_t interval = 300, uint32_t expires = 3600,
                        uint32_t timeout_ms = 4000, bool nat = true) {
        check("EnableSipRegisterServer",
              EnableSipRegisterServer(handle_, names.c_str(), 0, 0, server.c_str(), port,
                                      interval, expires, timeout_ms, nat ? 1 : 0));
    }
    void unregister() { check("DisableSipRegisterServer", DisableSipRegisterServer(handle_)); }
    SIPHANDLE handle() const { return handle_; }

private:
    static void trampoline(SIPHANDLE, TELEPHONY_RETURN_VALUE event, const char *name,
                           int32_t line, void *self) {
        auto *engine = static_cast<Engine *>(self);
        if (engine->listener_)
            engine->listener_(event, name, line);
    }
    void rebind() {
        if (handle_)
            check("SetNotificationCallback", SetNotificationCallback(handle_, trampoline, this));
    }
    SIPHANDLE handle_ = 0;
    Listener listener_;
};

/// A profile registry with one profile handle type.
class Registry {
public:
    using StateListener = std::function<void(uint32_t, SIP_PROFILE_STATE)>;
    using ErrorListener = std::function<void(uint32_t, TELEPHONY_RETURN_VALUE)>;

    Registry(StateListener on_state, ErrorListener on_error)
        : on_state_(std::move(on_state)), on_error_(std::move(on_error)) {
        check("SipRegistryOpen", SipRegistryOpen(state_cb, error_cb, this, &handle_));
    }
    ~Registry() { SipRegistryClose(handle_); }
    Registry(const Registry &) = delete;
    Registry &operator=(const Registry &) = delete;

    uint32_t create(const std::string &aor, const std::string &registrar,
                    const char *auth_user = nullptr, const char *password = nullptr,
                    uint32_t expires = 600, SIP_TRANSPORT transport = SipTransportUdp) {
        uint32_t id = 0;
        check("SipProfileCreate",
              SipProfileCreate(handle_, aor.c_str(), registrar.c_str(), nullptr, auth_user,
                               password, expires, transport, &id));
        return id;
    }
    /* TLS trust of a profile: a CA PEM file (or PEM text), and the system store or not. */
    void tls(uint32_t id, const std::string &trusted_pem, bool system_trust = true) {
        check("SipProfileSetTls", SipProfileSetTls(handle_, id, trusted_pem.c_str(),
                                                   system_trust ? 1 : 0, nullptr, nullptr));
    }
    SIPREGISTRY handle() const { return handle_; }

private:
    static void state_cb(SIPREGISTRY, uint32_t id, SIP_PROFILE_STATE state, void *self) {
        static_cast<Registry *>(self)->on_state_(id, state);
    }
    static void error_cb(SIPREGISTRY, uint32_t id, TELEPHONY_RETURN_VALUE error, void *self) {
        static_cast<Registry *>(self)->on_error_(id, error);
    }
    SIPREGISTRY handle_ = 0;
    StateListener on_state_;
    ErrorListener on_error_;
};

/// A profile handle, released when it goes out of scope.
class Profile {
public:
    Profile(Registry &registry, uint32_t id) {
        check("SipProfileRetrieve", SipProfileRetrieve(registry.handle(), id, &handle_));
    }
    ~Profile() {
        if (handle_)
            SipProfileRelease(handle_);
    }
    Profile(const Profile &) = delete;
    Profile &operator=(const Profile &) = delete;

    void enable() { check("SipProfileEnable", SipProfileEnable(handle_)); }
    void disable() { check("SipProfileDisable", SipProfileDisable(handle_)); }
    SIP_PROFILE_STATE state() const {
        SIP_PROFILE_STATE s = SipProfileUnregistered;
        check("SipProfileGetState", SipProfileGetState(handle_, &s));
        return s;
    }

private:
    SIPPROFILE handle_ = 0;
};

} // namespace lanscape
