/*
 * FFI stress: THREADS threads each create and destroy engines ROUNDS times, enabling and
 * disabling registration against HOST PORT, while a prober thread calls every function with
 * stale and forged handles. Every return code is checked. Run under valgrind by the tests.
 *
 *   ffi_stress HOST PORT [THREADS ROUNDS]     (defaults 4 and 6; at most 16 and 64)
 */
#include "lanscape_sip.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define MAX_THREADS 16
#define MAX_ROUNDS 64

static int THREADS = 4, ROUNDS = 6;

static const char *host;
static uint32_t port;
static atomic_int failures;
static atomic_int registered;
static _Atomic SIPHANDLE retired[MAX_THREADS * MAX_ROUNDS];
static atomic_int retired_count;
static atomic_int done;

#define EXPECT(call, want)                                                                   \
    do {                                                                                     \
        TELEPHONY_RETURN_VALUE rc_ = (call);                                                 \
        if (rc_ != (want)) {                                                                 \
            fprintf(stderr, "%s:%d %s = %s, expected %s\n", __FILE__, __LINE__, #call,       \
                    TelephonyReturnValueText(rc_), TelephonyReturnValueText(want));          \
            atomic_fetch_add(&failures, 1);                                                  \
        }                                                                                    \
    } while (0)

static void on_notify(SIPHANDLE engine, TELEPHONY_RETURN_VALUE event, const char *name,
                      int32_t line, void *user)
{
    (void)name;
    (void)line;
    (void)user;
    uint32_t lines;
    GetNumPhoneLines(engine, &lines); /* reentrant call from the callback */
    if (event == SipRegisterSuccess)
        atomic_fetch_add(&registered, 1);
}

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int round = 0; round < ROUNDS; round++) {
        SIPHANDLE engine = 0;
        EXPECT(StartSipTelephony("stress", 2, 0, "127.0.0.1", &engine), SipSuccess);
        EXPECT(SetNotificationCallback(engine, on_notify, NULL), SipSuccess);
        EXPECT(AddAuthorizationCredentials(engine, "u", "p", "*"), SipSuccess);
        char names[64];
        snprintf(names, sizeof names, "t%dr%da, t%dr%db", id, round, id, round);
        EXPECT(EnableSipRegisterServer(engine, names, 1, 0, host, port, 60, 300, 2000, round & 1),
               SipSuccess);
        EXPECT(EnableSipRegisterServer(engine, "x", 1, 0, host, port, 60, 300, 2000, 0),
               SipRegisterBadNameList);
        char first[32];
        snprintf(first, sizeof first, "t%dr%da", id, round);
        SIP_REGISTRATION_STATE state = SipStateRegistering;
        for (int wait = 0; wait < 300 && state != SipStateRegistered; wait++) {
            EXPECT(GetSipRegistrationState(engine, first, &state), SipSuccess);
            struct timespec ten_ms = {0, 10 * 1000 * 1000};
            nanosleep(&ten_ms, NULL);
        }
        if (state != SipStateRegistered) {
            fprintf(stderr, "%s did not register\n", first);
            atomic_fetch_add(&failures, 1);
        }
        if (round % 2 == 0)
            EXPECT(DisableSipRegisterServer(engine), SipSuccess);
        EXPECT(StopSipTelephony(engine), SipSuccess);
        EXPECT(StopSipTelephony(engine), SipInvalidHandle);
        retired[atomic_fetch_add(&retired_count, 1)] = engine;
    }
    return NULL;
}

static void *prober(void *arg)
{
    (void)arg;
    uint32_t n;
    SIP_REGISTRATION_STATE state;
    SIP_PROFILE_STATE pstate;
    unsigned seed = 12345;
    while (!atomic_load(&done)) {
        int count = atomic_load(&retired_count);
        SIPHANDLE h = count ? retired[rand_r(&seed) % count] : 0;
        SIPHANDLE forged = ((SIPHANDLE)rand_r(&seed) << 32) | (SIPHANDLE)rand_r(&seed);
        SIPHANDLE targets[2] = {h, forged};
        for (int i = 0; i < 2; i++) {
            SIPHANDLE t = targets[i];
            if (t == 0 || i == 1) { /* a forged one may, very rarely, be live: skip checks */
                GetNumPhoneLines(t, &n);
                SipProfileEnable(t);
                continue;
            }
            EXPECT(GetNumPhoneLines(t, &n), SipInvalidHandle);
            EXPECT(EnableSipDomain(t, "example.com"), SipInvalidHandle);
            EXPECT(EnableSipRegisterServer(t, "a", 0, 0, host, port, 1, 1, 1, 0), SipInvalidHandle);
            EXPECT(GetSipRegistrationState(t, "a", &state), SipInvalidHandle);
            EXPECT(SipProfileGetState(t, &pstate), SipInvalidHandle);
            EXPECT(SendSipKeepAlive(t), SipInvalidHandle);
            EXPECT(SendSipKeepAliveEx(t, host, port, 0, -1), SipInvalidHandle);
            EXPECT(EnableSipRegisterWaitMode(t, 1), SipInvalidHandle);
        }
    }
    return NULL;
}

static void *profiles(void *arg)
{
    (void)arg;
    char registrar[64];
    snprintf(registrar, sizeof registrar, "%s:%u", host, port);
    for (int round = 0; round < ROUNDS; round++) {
        SIPREGISTRY registry = 0;
        SIPPROFILE a = 0, b = 0;
        uint32_t id = 0;
        EXPECT(SipRegistryOpen(NULL, NULL, NULL, &registry), SipSuccess);
        EXPECT(SipProfileCreate(registry, "stressp@127.0.0.1", registrar, NULL, "u", "p", 300,
                                SipTransportUdp, &id),
               SipSuccess);
        EXPECT(SipProfileRetrieve(registry, id, &a), SipSuccess);
        EXPECT(SipProfileRetrieve(registry, id, &b), SipSuccess);
        EXPECT(SipProfileEnable(a), SipSuccess);
        EXPECT(SipProfileRemove(registry, id), SipProfileInUse);
        EXPECT(SipProfileRelease(a), SipSuccess);
        EXPECT(SipProfileRelease(a), SipInvalidHandle);
        EXPECT(SipProfileRemove(registry, id), SipSuccess);
        EXPECT(SipProfileEnable(b), SipInvalidHandle);
        EXPECT(SipRegistryClose(registry), SipSuccess);
        EXPECT(SipRegistryClose(registry), SipInvalidHandle);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 5) {
        fprintf(stderr, "usage: %s HOST PORT [THREADS ROUNDS]\n", argv[0]);
        return 2;
    }
    if (argc == 5) {
        THREADS = atoi(argv[3]);
        ROUNDS = atoi(argv[4]);
        if (THREADS < 1 || THREADS > MAX_THREADS || ROUNDS < 1 || ROUNDS > MAX_ROUNDS) {
            fprintf(stderr, "THREADS 1..%d, ROUNDS 1..%d\n", MAX_THREADS, MAX_ROUNDS);
            return 2;
        }
    }
    host = argv[1];
    port = (uint32_t)strtoul(argv[2], NULL, 10);
    pthread_t workers[MAX_THREADS], probe, profile;
    pthread_create(&probe, NULL, prober, NULL);
    pthread_create(&profile, NULL, profiles, NULL);
    for (int i = 0; i < THREADS; i++)
        pthread_create(&workers[i], NULL, worker, (void *)(intptr_t)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(workers[i], NULL);
    pthread_join(profile, NULL);
    atomic_store(&done, 1);
    pthread_join(probe, NULL);
    printf("stress: %d engines, %d registrations seen, %d failures\n", THREADS * ROUNDS,
           atomic_load(&registered), atomic_load(&failures));
    return atomic_load(&failures) == 0 && atomic_load(&registered) > 0 ? 0 : 1;
}
