/* SPDX-License-Identifier: MIT */
/*
 * pvusb-bench-usb: one workload against a real SourceSink gadget (pattern=1),
 * through one of two APIs, so that the same numbers can be taken
 *   direct   libusb async on the device itself        (libusb BUSPATH)
 *   USB/IP   libusb async on its vhci-hcd copy          (libusb BUSPATH)
 *   pvusb    the frontend library on a local controller (pvusb PORT),
 *            pvusbd's libusb back-end holding the device
 * Run by bench/gadget-bench.sh inside the gadget VM; that script prints the
 * table and the same-boot ratios.
 *
 *   pvusb-bench-usb [--quick] [--only CASE] [--label NAME] [--malloc] libusb BUSPATH
 *   pvusb-bench-usb [--quick] [--only CASE] [--label NAME] [-s SOCK] [-f FE] [--peer PID] pvusb PORT
 *
 * Cases: bulk IN and OUT at 16 KiB and 64 KiB with 1, 4 and 16 transfers in
 * flight (MB/s, MB = 10^6 bytes), and GET_DESCRIPTOR(device) round trips
 * (median and p99 in us). Each result is one line
 *   BENCH <label> <case> <value> <unit>
 * IN data is checked against the pattern at the end of each case (the last
 * buffers), so a fast path that delivers garbage does not count.
 * Each case also prints what it cost per transfer: CPU time and context
 * switches of this process and of --peer PID (pvusbd), one line
 *   COST <label> <case> xfers N app-cpu-us X app-csw Y peer-cpu-us Z peer-csw W
 * Exit status 1 when any transfer failed.
 */
#include <dirent.h>
#include <errno.h>
#include <libusb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pvusb/front.h"
#include "pvusb/local.h"

#define MAX_INFLIGHT 16
#define MPS 512u
#define CTL_SAMPLES_MAX 20000

static bool quick;
static const char *only; /* --only CASE: run just that case (for profiling) */
/* libusb: buffers from libusb_dev_mem_alloc (usbfs maps them: no kernel
 * buffer, no copy) unless --malloc asks for ordinary memory, which usbfs
 * copies through a buffer it allocates for every transfer. */
static bool use_malloc;
static const char *label = "run";
static int errors;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint8_t pattern(size_t k) { return (uint8_t)((k % MPS) % 63); }

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* ---- where the one CPU goes: CPU time and context switches ---- */

static int peer_pid; /* pvusbd, when given: its cost is part of the pvusb path */

struct psample {
	uint64_t run_ns; /* time on a CPU, all threads (schedstat) */
	uint64_t csw;   /* voluntary + involuntary context switches, all threads */
};

static uint64_t status_field(const char *path, const char *key)
{
	char line[128];
	unsigned long long v = 0;
	FILE *fp = fopen(path, "r");
	size_t klen = strlen(key);
	while (fp && fgets(line, sizeof(line), fp))
		if (!strncmp(line, key, klen)) {
			v = strtoull(line + klen, NULL, 10);
			break;
		}
	if (fp)
		fclose(fp);
	return v;
}

/* schedstat's run time is exact (ns), where /proc/PID/stat's ticks would
 * charge whole ticks to whoever runs at the tick. */
static struct psample psample(int pid)
{
	struct psample s = {0};
	char path[96];
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	DIR *dir = opendir(path);
	struct dirent *de;
	while (dir && (de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		char file[sizeof(path) + 300];
		snprintf(file, sizeof(file), "%s/%s/schedstat", path, de->d_name);
		FILE *fp = fopen(file, "r");
		unsigned long long run = 0;
		if (fp && fscanf(fp, "%llu", &run) == 1)
			s.run_ns += run;
		if (fp)
			fclose(fp);
		snprintf(file, sizeof(file), "%s/%s/status", path, de->d_name);
		s.csw += status_field(file, "voluntary_ctxt_switches:") +
			 status_field(file, "nonvoluntary_ctxt_switches:");
	}
	if (dir)
		closedir(dir);
	return s;
}

/* Per transfer: CPU us and context switches of this process (and the peer). */
static void print_cost(const char *c, struct psample me0, struct psample peer0, uint64_t xfers)
{
	if (!xfers)
		return;
	struct psample me = psample(getpid()), peer = peer_pid ? psample(peer_pid) : peer0;
	double x = (double)xfers;
	printf("COST %s %s xfers %llu app-cpu-us %.1f app-csw %.2f peer-cpu-us %.1f peer-csw %.2f\n", label, c,
	       (unsigned long long)xfers, (double)(me.run_ns - me0.run_ns) / 1e3 / x,
	       (double)(me.csw - me0.csw) / x, (double)(peer.run_ns - peer0.run_ns) / 1e3 / x,
	       (double)(peer.csw - peer0.csw) / x);
}

/* ---- the engine: one API's way to submit and wait ---- */

struct slot;
struct engine {
	int (*submit)(struct slot *s);
	int (*wait)(struct engine *e, int timeout_ms);
	void *ctx;
};

struct stream {
	struct engine *e;
	bool stopping, in;
	unsigned inflight;
	uint32_t len;
	uint64_t bytes, done, failed;
	int first_error;
};

struct slot {
	struct stream *st;
	uint8_t *buf;
	void *xfer; /* libusb_transfer or pvusb_urb */
};

/* Every completion: count, resubmit until the deadline. */
static void slot_done(struct slot *s, int status, uint32_t actual)
{
	struct stream *st = s->st;
	st->inflight--;
	st->done++;
	st->bytes += actual;
	if (status != 0 || actual != st->len) {
		if (!st->failed++)
			st->first_error = status ? status : -EREMOTEIO;
		st->stopping = true;
	}
	if (st->stopping)
		return;
	if (st->e->submit(s) == 0)
		st->inflight++;
	else
		st->failed++, st->stopping = true;
}

/* Run `depth` transfers for `ns` after a short warm-up; MB/s or -1. */
static double stream_run(struct engine *e, struct slot *slots, unsigned depth, bool in, uint32_t len,
			 uint64_t ns, uint64_t *xfers)
{
	struct stream st = {.e = e, .in = in, .len = len};
	uint64_t t0 = 0, bytes0 = 0, warm = now_ns() + ns / 10, end = warm + ns;
	for (unsigned i = 0; i < depth; i++) {
		slots[i].st = &st;
		if (e->submit(&slots[i]) < 0) {
			st.failed++;
			st.stopping = true;
			break;
		}
		st.inflight++;
	}
	while (st.inflight) {
		if (e->wait(e, 2000) <= 0 && st.inflight) {
			fprintf(stderr, "%s: no completion for 2 s (%u in flight)\n", label, st.inflight);
			errors++;
			return -1; /* transfers may still be in flight: stop the whole run */
		}
		uint64_t t = now_ns();
		if (!t0 && t >= warm) {
			t0 = t;
			bytes0 = st.bytes;
		}
		if (t >= end)
			st.stopping = true;
	}
	uint64_t t1 = now_ns();
	if (st.failed) {
		fprintf(stderr, "%s: bulk %s %u B x%u: %llu of %llu transfers failed (first status %d)\n", label,
			in ? "IN" : "OUT", len, depth, (unsigned long long)st.failed,
			(unsigned long long)st.done, st.first_error);
		errors++;
		return -1;
	}
	for (unsigned i = 0; in && i < depth; i++)
		for (size_t k = 0; k < len; k++)
			if (slots[i].buf[k] != pattern(k)) {
				fprintf(stderr, "%s: bulk IN byte %zu is %u, expected %u\n", label, k, slots[i].buf[k],
					pattern(k));
				errors++;
				return -1;
			}
	if (!t0 || t1 <= t0)
		return -1;
	*xfers = st.done;
	return (double)(st.bytes - bytes0) * 1e3 / (double)(t1 - t0); /* MB/s */
}

static void print_bulk_cases(struct engine *e, struct slot *slots)
{
	static const uint32_t lens[] = {16384, 65536};
	static const unsigned depths[] = {1, 4, 16};
	uint64_t ns = quick ? 300000000u : 1500000000u;
	for (int dir = 0; dir < 2; dir++)
		for (unsigned l = 0; l < 2; l++)
			for (unsigned d = 0; d < 3; d++) {
				bool in = dir == 0;
				char c[32];
				snprintf(c, sizeof(c), "bulk-%s-%uk-x%u", in ? "in" : "out", lens[l] / 1024, depths[d]);
				if (only && strcmp(only, c) != 0)
					continue;
				/* OUT buffers carry the pattern: the sink checks it */
				for (unsigned i = 0; !in && i < depths[d]; i++)
					for (size_t k = 0; k < lens[l]; k++)
						slots[i].buf[k] = pattern(k);
				struct psample me0 = psample(getpid()), peer0 = psample(peer_pid ? peer_pid : getpid());
				uint64_t xfers = 0;
				double mbs = stream_run(e, slots, depths[d], in, lens[l], ns, &xfers);
				if (mbs < 0)
					return;
				printf("BENCH %s %s %.1f MB/s\n", label, c, mbs);
				print_cost(c, me0, peer0, xfers);
			}
}

/* Median and p99 of control round trips, `rt` doing one. */
static void print_control(int (*rt)(void *ctx), void *ctx)
{
	unsigned n = quick ? 300 : 2000;
	if (only && strcmp(only, "control") != 0)
		return;
	uint64_t *s = calloc(n, sizeof(uint64_t));
	if (!s)
		return;
	for (unsigned i = 0; i < 20; i++) /* warm-up */
		rt(ctx);
	struct psample me0 = psample(getpid()), peer0 = psample(peer_pid ? peer_pid : getpid());
	for (unsigned i = 0; i < n; i++) {
		uint64_t t = now_ns();
		int rc = rt(ctx);
		s[i] = now_ns() - t;
		if (rc != 18) {
			fprintf(stderr, "%s: GET_DESCRIPTOR: %d\n", label, rc);
			errors++;
			free(s);
			return;
		}
	}
	qsort(s, n, sizeof(uint64_t), cmp_u64);
	printf("BENCH %s control-median %.1f us\n", label, (double)s[n / 2] / 1e3);
	printf("BENCH %s control-p99 %.1f us\n", label, (double)s[n * 99 / 100] / 1e3);
	print_cost("control", me0, peer0, n);
	free(s);
}

/* ---- libusb ---- */

struct lu {
	libusb_context *ctx;
	libusb_device_handle *h;
	uint8_t ep_in, ep_out;
};

static void LIBUSB_CALL lu_cb(struct libusb_transfer *t)
{
	slot_done(t->user_data, t->status == LIBUSB_TRANSFER_COMPLETED ? 0 : -(int)t->status - 1000,
		  (uint32_t)t->actual_length);
}

static struct lu lu_g;

static int lu_submit(struct slot *s)
{
	struct libusb_transfer *t = s->xfer;
	libusb_fill_bulk_transfer(t, lu_g.h, s->st->in ? lu_g.ep_in : lu_g.ep_out, s->buf, (int)s->st->len,
				  lu_cb, s, 5000);
	return libusb_submit_transfer(t) == 0 ? 0 : -EIO;
}

static int lu_wait(struct engine *e, int timeout_ms)
{
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = timeout_ms % 1000 * 1000};
	return libusb_handle_events_timeout_completed(lu_g.ctx, &tv, NULL) == 0 ? 1 : -1;
}

static int lu_control(void *ctx)
{
	uint8_t d[18];
	return libusb_control_transfer(lu_g.h, 0x80, LIBUSB_REQUEST_GET_DESCRIPTOR, 0x100, 0, d, 18, 2000);
}

/* "1-1" or "5-1.2" -> that device. */
static libusb_device *lu_find(libusb_context *ctx, const char *path)
{
	libusb_device **list, *found = NULL;
	ssize_t n = libusb_get_device_list(ctx, &list);
	for (ssize_t i = 0; i < n && !found; i++) {
		uint8_t ports[8];
		int np = libusb_get_port_numbers(list[i], ports, 8);
		char name[64];
		int len = snprintf(name, sizeof(name), "%u", libusb_get_bus_number(list[i]));
		for (int k = 0; k < np; k++)
			len += snprintf(name + len, sizeof(name) - (size_t)len, "%c%u", k ? '.' : '-', ports[k]);
		if (np > 0 && strcmp(name, path) == 0)
			found = libusb_ref_device(list[i]);
	}
	if (n >= 0)
		libusb_free_device_list(list, 1);
	return found;
}

static int lu_bulk_eps(libusb_device *dev)
{
	struct libusb_config_descriptor *cfg;
	if (libusb_get_active_config_descriptor(dev, &cfg) != 0)
		return -1;
	const struct libusb_interface_descriptor *id = &cfg->interface[0].altsetting[0];
	for (int i = 0; i < id->bNumEndpoints; i++) {
		const struct libusb_endpoint_descriptor *ep = &id->endpoint[i];
		if ((ep->bmAttributes & 3) == LIBUSB_TRANSFER_TYPE_BULK)
			*(ep->bEndpointAddress & 0x80 ? &lu_g.ep_in : &lu_g.ep_out) = ep->bEndpointAddress;
	}
	libusb_free_config_descriptor(cfg);
	return lu_g.ep_in && lu_g.ep_out ? 0 : -1;
}

static int run_libusb(const char *path)
{
	if (libusb_init(&lu_g.ctx) != 0)
		return fprintf(stderr, "%s: libusb_init failed\n", label), 1;
	libusb_device *dev = lu_find(lu_g.ctx, path);
	if (!dev)
		return fprintf(stderr, "%s: no USB device at %s\n", label, path), 1;
	int rc = libusb_open(dev, &lu_g.h);
	if (rc == 0 && lu_bulk_eps(dev) < 0)
		rc = LIBUSB_ERROR_NOT_FOUND;
	if (rc == 0)
		rc = libusb_claim_interface(lu_g.h, 0);
	libusb_unref_device(dev);
	if (rc != 0)
		return fprintf(stderr, "%s: %s: %s\n", label, path, libusb_strerror(rc)), 1;
	struct slot slots[MAX_INFLIGHT];
	for (int i = 0; i < MAX_INFLIGHT; i++) {
		slots[i].buf = use_malloc ? NULL : libusb_dev_mem_alloc(lu_g.h, 65536);
		if (!slots[i].buf)
			slots[i].buf = aligned_alloc(4096, 65536);
		slots[i].xfer = libusb_alloc_transfer(0);
	}
	struct engine e = {.submit = lu_submit, .wait = lu_wait};
	print_control(lu_control, NULL);
	print_bulk_cases(&e, slots);
	/* buffers and transfers go with the process */
	libusb_release_interface(lu_g.h, 0);
	libusb_close(lu_g.h);
	libusb_exit(lu_g.ctx);
	return errors ? 1 : 0;
}

/* ---- pvusb frontend ---- */

struct pv {
	struct pvusb_front *f;
	struct pvusb_front_dev d;
	uint8_t ep_in, ep_out;
	uint8_t *ctl_buf;
};
static struct pv pv_g;

static void pv_cb(struct pvusb_urb *u) { slot_done(u->user, u->status, u->actual_length); }

static int pv_submit(struct slot *s)
{
	struct pvusb_urb *u = s->xfer;
	*u = (struct pvusb_urb){.port = pv_g.d.port, .devaddr = pv_g.d.addr, .type = USBIF_PIPE_TYPE_BULK,
				.endpoint = (s->st->in ? pv_g.ep_in : pv_g.ep_out) & 15, .in = s->st->in,
				.length = s->st->len, .buffer = s->buf, .complete = pv_cb, .user = s, .id = -1};
	return pvusb_front_submit(pv_g.f, u);
}

static int pv_wait(struct engine *e, int timeout_ms) { return pvusb_front_wait(pv_g.f, timeout_ms); }

/* The same synchronous round trip a libusb_control_transfer is. */
static int pv_control(void *ctx)
{
	return pvusb_front_control(pv_g.f, pv_g.d.port, pv_g.d.addr, 0x80, 6, 0x100, 0, pv_g.ctl_buf, 18,
				   2000);
}

static int pv_bulk_eps(void)
{
	const uint8_t *c = pv_g.d.config;
	for (unsigned off = 0; off + 7 <= pv_g.d.config_len && c[off] >= 2; off += c[off])
		if (c[off + 1] == 5 && (c[off + 3] & 3) == 2)
			*(c[off + 2] & 0x80 ? &pv_g.ep_in : &pv_g.ep_out) = c[off + 2];
	return pv_g.ep_in && pv_g.ep_out ? 0 : -1;
}

static int run_pvusb(const char *sock, const char *fe, unsigned port)
{
	char err[256];
	if (pvusb_front_connect(sock, fe, 0, NULL, &pv_g.f, err, sizeof(err)) < 0)
		return fprintf(stderr, "%s: %s\n", label, err), 1;
	for (int i = 0; i < 100 && !pvusb_front_port_speed(pv_g.f, port); i++)
		pvusb_front_wait(pv_g.f, 50);
	int rc = pvusb_front_enumerate(pv_g.f, port, 5, &pv_g.d);
	if (rc < 0 || pv_bulk_eps() < 0)
		return fprintf(stderr, "%s: port %u: enumeration failed: %s\n", label, port,
			       rc < 0 ? strerror(-rc) : "no bulk endpoints"), 1;
	pv_g.ctl_buf = pvusb_front_alloc(pv_g.f, 4096);
	static struct pvusb_urb urbs[MAX_INFLIGHT];
	struct slot slots[MAX_INFLIGHT];
	for (int i = 0; i < MAX_INFLIGHT; i++) {
		slots[i].buf = pvusb_front_alloc(pv_g.f, 65536); /* shared pages: zero copy */
		slots[i].xfer = &urbs[i];
		if (!slots[i].buf)
			return fprintf(stderr, "%s: pvusb_front_alloc failed\n", label), 1;
	}
	struct engine e = {.submit = pv_submit, .wait = pv_wait};
	print_control(pv_control, NULL);
	print_bulk_cases(&e, slots);
	pvusb_front_close(pv_g.f);
	return errors ? 1 : 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: pvusb-bench-usb [--quick] [--only CASE] [--label NAME] [--malloc] libusb BUSPATH\n"
			"       pvusb-bench-usb [--quick] [--only CASE] [--label NAME] [-s SOCK] [-f FE] [--peer PID] "
			"pvusb PORT\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *sock = getenv("PVUSB_SOCKET") ? getenv("PVUSB_SOCKET") : PVUSB_DEFAULT_SOCKET;
	const char *fe = "bench";
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = true;
		else if (!strcmp(argv[i], "--label") && i + 1 < argc)
			label = argv[++i];
		else if (!strcmp(argv[i], "-s") && i + 1 < argc)
			sock = argv[++i];
		else if (!strcmp(argv[i], "-f") && i + 1 < argc)
			fe = argv[++i];
		else if (!strcmp(argv[i], "--malloc"))
			use_malloc = true;
		else if (!strcmp(argv[i], "--only") && i + 1 < argc)
			only = argv[++i];
		else if (!strcmp(argv[i], "--peer") && i + 1 < argc)
			peer_pid = atoi(argv[++i]);
		else
			return usage();
	}
	if (argc - i != 2)
		return usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(argv[i], "libusb"))
		return run_libusb(argv[i + 1]);
	if (!strcmp(argv[i], "pvusb"))
		return run_pvusb(sock, fe, (unsigned)strtoul(argv[i + 1], NULL, 10));
	return usage();
}
