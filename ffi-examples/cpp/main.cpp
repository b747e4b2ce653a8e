// Registers through the RAII wrapper, with both APIs, against HOST PORT; exits 0 when every
// expected notification arrived.
//   register_cpp HOST PORT
#include "lanscape.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

namespace {
std::mutex lock;
std::condition_variable changed;
std::vector<std::string> seen;

void note(const std::string &what) {
    std::printf("%s\n", what.c_str());
    std::fflush(stdout);
    std::lock_guard<std::mutex> guard(lock);
    seen.push_back(what);
    changed.notify_all();
}

bool wait_for(const std::string &what) {
    std::unique_lock<std::mutex> guard(lock);
    return changed.wait_for(guard, std::chrono::seconds(10), [&] {
        for (const auto &s : seen)
            if (s == what)
                return true;
        return false;
    });
}
} // namespace

int main(int argc, char **argv) {
    // HOST PORT, or HOST PORT --tls CA_FILE to register over TLS trusting that CA.
    if (argc != 3 && !(argc == 5 && std::string(argv[3]) == "--tls")) {
        std::fprintf(stderr, "usage: %s HOST PORT [--tls CA_FILE]\n", argv[0]);
        return 2;
    }
    const std::string host = argv[1];
    const uint32_t port = static_cast<uint32_t>(std::strtoul(argv[2], nullptr, 10));
    const bool tls = argc == 5;
    const SIP_TRANSPORT transport = tls ? SipTransportTls : SipTransportUdp;
    try {
        {
            lanscape::Engine engine("c++ example", 1, 0, "127.0.0.1");
            engine.on_notification([](TELEPHONY_RETURN_VALUE e, const std::string &name, int) {
                note(std::string(TelephonyReturnValueText(e)) + " " + name);
            });
            engine.transport(transport);
            if (tls)
                engine.trust(argv[4]);
            engine.register_names("cpp-alice", host, port);
            if (!wait_for("SipRegisterSuccess cpp-alice"))
                return 1;
            try {
                engine.register_names("bad name", host, port);
                return 1;
            } catch (const lanscape::Error &e) {
                if (e.code() != SipRegisterBadNameList)
                    return 1;
                note(std::string("refused: ") + e.what());
            }
        } // ~Engine unregisters
        if (!wait_for("SipUnregistered cpp-alice"))
            return 1;

        lanscape::Registry registry(
            [](uint32_t id, SIP_PROFILE_STATE s) { note("profile " + std::to_string(id) + " state " + std::to_string(s)); },
            [](uint32_t id, TELEPHONY_RETURN_VALUE e) { note("profile " + std::to_string(id) + " error " + TelephonyReturnValueText(e)); });
        uint32_t id = registry.create("cpp-bob@" + host, host + ":" + std::to_string(port),
                                      nullptr, nullptr, 600, transport);
        if (tls)
            registry.tls(id, argv[4]);
        lanscape::Profile watcher(registry, id); // keeps this registry hearing of the profile
        {
            lanscape::Profile profile(registry, id);
            profile.enable();
            if (!wait_for("profile " + std::to_string(id) + " state " + std::to_string(SipProfileRegistered)))
                return 1;
            if (profile.state() != SipProfileRegistered)
                return 1;
        } // ~Profile: the last enabled handle goes, so the profile unregisters
        if (!wait_for("profile " + std::to_string(id) + " state " + std::to_string(SipProfileUnregistered)))
            return 1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "failed: %s\n", e.what());
        return 1;
    }
    std::printf("C++ example OK\n");
    return 0;
}
