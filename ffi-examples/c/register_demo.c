/*
 * Registers names with a SIP registrar through liblanscape-sip's C ABI, prints every
 * notification, unregisters, and checks what it saw.
 *
 *   register_demo HOST PORT NAMES [REALM USER PASSWORD] [--tcp | --tls CA_FILE]
 *
 * With --tls the registrar's certificate must be signed by the CA in CA_FILE (or one the
 * system trusts) and match HOST (or the SIP domain, when HOST is an address and a domain
 * is set with EnableSipDomain).
 *
 * Exit status 0 when every name registered and unregistered, 1 otherwise.
 */
#include "lanscape_sip.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct tally {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int registered;
    int unregistered;
    int failed;
};

static void on_notify(SIPHANDLE engine, TELEPHONY_RETURN_VALUE event, const char *name,
                      int32_t line, void *user_data)
{
    struct tally *t = user_data;
    uint32_t lines = 0;
    /* Calling back into the library from a callback is allowed. */
    GetNumPhoneLines(engine, &lines);
    printf("event %-30s name=%s line=%d (engine has %u lines)\n",
           TelephonyReturnValueText(event), name, line, lines);
    fflush(stdout);
    pthread_mutex_lock(&t->lock);
    if (event == SipRegisterSuccess)
        t->registered++;
    else if (event == SipUnregistered)
        t->unregistered++;
    else
        t->failed++;
    pthread_cond_broadcast(&t->changed);
    pthread_mutex_unlock(&t->lock);
}

static void on_log(SIPHANDLE engine, int32_t level, const char *message, void *user_data)
{
    (void)engine;
    (void)user_data;
    if (level <= 2)
        printf("log[%d] %s\n", level, message);
}

/* Waits until *counter reaches want, or 10 s pass. */
static int wait_for(struct tally *t, int *counter, int want)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&t->lock);
    while (*counter < want && t->failed == 0) {
        if (pthread_cond_timedwait(&t->changed, &t->lock, &deadline) != 0)
            break;
    }
    int ok = *counter >= want;
    pthread_mutex_unlock(&t->lock);
    return ok;
}

static int check(const char *what, TELEPHONY_RETURN_VALUE rc, TELEPHONY_RETURN_VALUE want)
{
    if (rc != want) {
        fprintf(stderr, "%s returned %s, expected %s (%s)\n", what, TelephonyReturnValueText(rc),
                TelephonyReturnValueText(want), GetLastSipErrorText());
        return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    const char *arg[7];
    int count = 0;
    uint32_t transport = SipTransportUdp;
    const char *ca_file = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tcp") == 0) {
            transport = SipTransportTcp;
        } else if (strcmp(argv[i], "--tls") == 0 && i + 1 < argc) {
            transport = SipTransportTls;
            ca_file = argv[++i];
        } else if (count < 7) {
            arg[count++] = argv[i];
        }
    }
    if (count != 3 && count != 6) {
        fprintf(stderr, "usage: %s HOST PORT NAMES [REALM USER PASSWORD] [--tcp | --tls CA_FILE]\n",
                argv[0]);
        return 2;
    }
    if (LanScapeSipAbiVersion() != LANSCAPE_SIP_ABI_VERSION) {
        fprintf(stderr, "header and library ABI versions differ\n");
        return 1;
    }
    const char *host = arg[0];
    uint32_t port = (uint32_t)strtoul(arg[1], NULL, 10);
    const char *names = arg[2];
    int expected = 1;
    for (const char *p = names; *p; p++)
        expected += *p == ',';

    struct tally t = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
    SIPHANDLE engine = 0;
    int ok = check("StartSipTelephony",
                   StartSipTelephony("c example", 1, 0, "127.0.0.1", &engine), SipSuccess);
    if (!ok)
        return 1;
    ok &= check("SetNotificationCallback", SetNotificationCallback(engine, on_notify, &t),
                SipSuccess);
    ok &= check("SetLogCallback", SetLogCallback(engine, on_log, NULL), SipSuccess);
    if (count == 6)
        ok &= check("AddAuthorizationCredentials",
                    AddAuthorizationCredentials(engine, arg[4], arg[5], arg[3]), SipSuccess);
    /* TCP or TLS: one connection to the registrar shared by every name. */
    ok &= check("SetSipRegisterTransport", SetSipRegisterTransport(engine, transport, 0),
                SipSuccess);
    if (ca_file)
        ok &= check("AddSipTlsTrustedCertificates", AddSipTlsTrustedCertificates(engine, ca_file),
                    SipSuccess);

    /* Parameter checks answer at once, before anything is sent. */
    ok &= check("interval 0", EnableSipRegisterServer(engine, names, 0, 0, host, port, 0, 60, 0, 0),
                SipRegisterIntervalError);
    ok &= check("no proxy", EnableSipRegisterServer(engine, names, 0, 1, host, port, 60, 60, 0, 0),
                SipProxyNotEnabled);
    ok &= check("NULL names", EnableSipRegisterServer(engine, NULL, 0, 0, host, port, 60, 60, 0, 0),
                SipRegisterBadNameList);

    ok &= check("EnableSipRegisterServer",
                EnableSipRegisterServer(engine, names, 0, 0, host, port, 60, 300, 4000, 0),
                SipSuccess);
    if (ok && !wait_for(&t, &t.registered, expected)) {
        fprintf(stderr, "only %d of %d names registered\n", t.registered, expected);
        ok = 0;
    }
    if (ok) {
        SIP_REGISTRATION_STATE state = SipStateUnregistered;
        char first[64];
        snprintf(first, sizeof first, "%.*s", (int)strcspn(names, ","), names);
        ok &= check("GetSipRegistrationState", GetSipRegistrationState(engine, first, &state),
                    SipSuccess);
        ok &= state == SipStateRegistered;
    }
    ok &= check("DisableSipRegisterServer", DisableSipRegisterServer(engine), SipSuccess);
    if (ok && !wait_for(&t, &t.unregistered, expected)) {
        fprintf(stderr, "only %d of %d names unregistered\n", t.unregistered, expected);
        ok = 0;
    }
    ok &= check("StopSipTelephony", StopSipTelephony(engine), SipSuccess);
    ok &= check("stale handle", StopSipTelephony(engine), SipInvalidHandle);
    ok &= check("forged handle", DisableSipRegisterServer(0x1234567800000001ull), SipInvalidHandle);
    printf("registered=%d unregistered=%d failed=%d: %s\n", t.registered, t.unregistered,
           t.failed, ok ? "OK" : "FAILED");
    return ok && t.failed == 0 ? 0 : 1;
}
