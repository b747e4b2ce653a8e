/*
 * libre's sipreg (baresip's registration client, Debian libre-dev) as the load benchmark's
 * third client: registers N names (s0 .. sN-1) at a registrar with one sipreg_register
 * each, answers digest challenges with one credential, and stops once every name has its
 * 200. At most WINDOW registrations are in progress at once (a new one starts when one
 * ends), the bound sipp and the engine work with: started all at once, 3,000 names over UDP
 * overflow the registrar's socket and a fifth of them time out.
 *
 *   libre_sipreg udp|tcp HOST PORT N USER PASSWORD WINDOW
 *
 * Prints "RESULT seconds registered failed": the time from the first sipreg_register to the
 * last 200. The benchmark measures its CPU time (getrusage of its child).
 */
/* libre's headers expect the build flags of its own users (HAVE_INTTYPES_H). */
#define HAVE_INTTYPES_H 1
#include <inttypes.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <re.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *user;
static const char *password;
static unsigned total, registered, failed, started;
static bool *done;
static struct sipreg **regs;
static struct sip *sip;
static char reg_uri[128];
static const char *host;

static void start_next(void);

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int auth_handler(char **username, char **pass, const char *realm, void *arg)
{
	(void)realm;
	(void)arg;
	int err = str_dup(username, user);
	return err ? err : str_dup(pass, password);
}

static void response_handler(int err, const struct sip_msg *msg, void *arg)
{
	size_t i = (size_t)arg;
	if (done[i])
		return;
	if (err || !msg || msg->scode >= 300) {
		if (msg && (msg->scode == 401 || msg->scode == 407))
			return; /* sipreg answers the challenge itself */
		done[i] = true;
		failed++;
	} else if (msg->scode >= 200) {
		done[i] = true;
		registered++;
	} else {
		return; /* provisional */
	}
	if (registered + failed == total)
		re_cancel();
	else
		start_next();
}

static void start_next(void)
{
	if (started == total)
		return;
	size_t i = started++;
	char aor[128], cuser[32];
	re_snprintf(cuser, sizeof cuser, "s%zu", i);
	re_snprintf(aor, sizeof aor, "sip:s%zu@%s", i, host);
	int err = sipreg_register(&regs[i], sip, reg_uri, aor, NULL, aor, 3600, cuser, NULL, 0,
				  0, auth_handler, NULL, false, response_handler, (void *)i,
				  NULL, NULL);
	if (err) {
		fprintf(stderr, "sipreg_register %zu: %s\n", i, strerror(err));
		exit(1);
	}
}

static void exit_handler(void *arg)
{
	(void)arg;
	re_cancel();
}

int main(int argc, char **argv)
{
	if (argc != 8) {
		fprintf(stderr, "usage: %s udp|tcp HOST PORT N USER PASSWORD WINDOW\n", argv[0]);
		return 2;
	}
	enum sip_transp tp = strcmp(argv[1], "tcp") == 0 ? SIP_TRANSP_TCP : SIP_TRANSP_UDP;
	host = argv[2];
	unsigned port = (unsigned)atoi(argv[3]);
	total = (unsigned)atoi(argv[4]);
	user = argv[5];
	password = argv[6];
	unsigned window = (unsigned)atoi(argv[7]);
	done = calloc(total, sizeof *done);
	regs = calloc(total, sizeof *regs);
	if (!done || !regs || libre_init())
		return 1;

	/* A resolver is required by sip_alloc; the registrar is given as an address, so it is
	 * never asked anything. */
	struct sa ns, laddr;
	struct dnsc *dnsc = NULL;
	sa_set_str(&ns, "127.0.0.1", 53);
	sa_set_str(&laddr, host, 0);
	int err = dnsc_alloc(&dnsc, NULL, &ns, 1);
	err = err ? err : sip_alloc(&sip, dnsc, 8192, 8192, 8192, "libre sipreg bench", exit_handler, NULL);
	err = err ? err : sip_transp_add(sip, tp, &laddr);
	if (err) {
		fprintf(stderr, "libre setup: %s\n", strerror(err));
		return 1;
	}

	re_snprintf(reg_uri, sizeof reg_uri, "sip:%s:%u;transport=%s", host, port,
		    tp == SIP_TRANSP_TCP ? "tcp" : "udp");
	double start = now();
	for (unsigned k = 0; k < window; k++)
		start_next();
	re_main(NULL);
	double elapsed = now() - start;
	printf("RESULT %.6f %u %u\n", elapsed, registered, failed);
	fflush(stdout);
	/* Leave the bindings at the registrar (the benchmark counts them): no unregistration. */
	_exit(0);
}
