/*
 * Loads liblanscape-sip with dlopen/dlsym only (as legacy telephony stacks do), registers a
 * name, stops, checks that no thread of the library is left, and dlcloses it: three times.
 *
 *   dlopen_demo LIBRARY HOST PORT
 */
#include "lanscape_sip.h" /* types only: every function comes from dlsym */

#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef uint32_t (*abi_version_fn)(void);
typedef const char *(*text_fn)(int32_t);
typedef TELEPHONY_RETURN_VALUE (*start_fn)(const char *, uint32_t, uint32_t, const char *,
                                           SIPHANDLE *);
typedef TELEPHONY_RETURN_VALUE (*stop_fn)(SIPHANDLE);
typedef TELEPHONY_RETURN_VALUE (*set_callback_fn)(SIPHANDLE, SipNotifyCallback, void *);
typedef TELEPHONY_RETURN_VALUE (*enable_fn)(SIPHANDLE, const char *, int32_t, int32_t,
                                            const char *, uint32_t, uint32_t, uint32_t,
                                            uint32_t, int32_t);

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int registered, unregistered;

static void on_notify(SIPHANDLE engine, TELEPHONY_RETURN_VALUE event, const char *name,
                      int32_t line, void *user_data)
{
    (void)engine;
    (void)line;
    (void)user_data;
    printf("  event %d for %s\n", (int)event, name);
    pthread_mutex_lock(&lock);
    if (event == SipRegisterSuccess)
        registered++;
    if (event == SipUnregistered)
        unregistered++;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

static int wait_registered(int want)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&lock);
    while (registered < want &&
           pthread_cond_timedwait(&changed, &lock, &deadline) == 0) {
    }
    int ok = registered >= want;
    pthread_mutex_unlock(&lock);
    return ok;
}

static int thread_count(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

#define LOAD(var, type, name)                                                                \
    type var = (type)dlsym(lib, name);                                                       \
    if (!var) {                                                                              \
        fprintf(stderr, "dlsym %s: %s\n", name, dlerror());                                  \
        return 1;                                                                            \
    }

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s LIBRARY HOST PORT\n", argv[0]);
        return 2;
    }
    uint32_t port = (uint32_t)strtoul(argv[3], NULL, 10);
    int threads_before = thread_count();
    for (int round = 1; round <= 3; round++) {
        void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        if (!lib) {
            fprintf(stderr, "dlopen: %s\n", dlerror());
            return 1;
        }
        LOAD(abi_version, abi_version_fn, "LanScapeSipAbiVersion");
        LOAD(text, text_fn, "TelephonyReturnValueText");
        LOAD(start, start_fn, "StartSipTelephony");
        LOAD(stop, stop_fn, "StopSipTelephony");
        LOAD(set_callback, set_callback_fn, "SetNotificationCallback");
        LOAD(enable, enable_fn, "EnableSipRegisterServer");
        if (abi_version() != LANSCAPE_SIP_ABI_VERSION) {
            fprintf(stderr, "ABI %u, header %u\n", abi_version(), LANSCAPE_SIP_ABI_VERSION);
            return 1;
        }
        SIPHANDLE engine = 0;
        TELEPHONY_RETURN_VALUE rc = start("dlopen example", 1, 0, "127.0.0.1", &engine);
        if (rc != SipSuccess) {
            fprintf(stderr, "start: %s\n", text(rc));
            return 1;
        }
        set_callback(engine, on_notify, NULL);
        char name[32];
        snprintf(name, sizeof name, "dl%d", round);
        rc = enable(engine, name, 0, 0, argv[2], port, 60, 300, 4000, 0);
        if (rc != SipSuccess || !wait_registered(round)) {
            fprintf(stderr, "round %d: registration failed (%s)\n", round, text(rc));
            return 1;
        }
        if (stop(engine) != SipSuccess || stop(engine) != SipInvalidHandle) {
            fprintf(stderr, "round %d: stop failed\n", round);
            return 1;
        }
        int threads_after = thread_count();
        if (threads_after != threads_before) {
            fprintf(stderr, "round %d: %d threads before, %d after stop\n", round,
                    threads_before, threads_after);
            return 1;
        }
        if (dlclose(lib) != 0) {
            fprintf(stderr, "dlclose: %s\n", dlerror());
            return 1;
        }
        printf("round %d: registered, stopped, no thread left, unloaded\n", round);
    }
    if (unregistered != 3) {
        fprintf(stderr, "expected 3 unregistrations, saw %d\n", unregistered);
        return 1;
    }
    printf("dlopen example OK\n");
    return 0;
}
