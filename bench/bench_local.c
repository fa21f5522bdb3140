/* SPDX-License-Identifier: MIT */
/*
 * pvusb-bench: the local transport end to end, each figure next to a
 * baseline measured in the same run (testbeds.md section 3).
 *
 * A real pvusbd runs on a private socket with a USB 2.0 controller and the
 * source/sink device on port 1; this process is the frontend. Cases:
 *   1. bulk IN 64 KiB, 16 in flight, zero-copy      vs memcpy bandwidth
 *   2. bulk OUT 64 KiB, 16 in flight, sink-verified  vs memcpy bandwidth
 *   3. 0-byte bulk, 16 in flight (URBs/s)            vs shared-memory ping-pong
 *   4. control GET_DESCRIPTOR(device) round trip     vs shared-memory ping-pong,
 *      and an eventfd ping-pong as a second reference
 *
 * Usage: pvusb-bench [--quick] [--json] [PVUSBD]
 * The daemon is PVUSBD, else $PVUSBD, else the path built in (PVUSBD_PATH).
 * Exit status: 0 (targets met or not), 1 when anything errored.
 */
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/sock.h"
#include "util/spin.h"
#include "pvusb/front.h"

#ifndef PVUSBD_PATH
#define PVUSBD_PATH "pvusbd"
#endif

#define FE "bench"
#define PORT 1
#define ADDR 7
#define NURB 16
#define BULK_LEN 65536u
#define BULK_MPS 512u

static bool quick, json_out;
static pid_t daemon_pid = -1; /* for the CPU meter */
static int errors; /* transfer failures and anything else that went wrong */

/* ---- small helpers ---- */

/* Progress and errors go to stderr so --json keeps stdout clean. */
static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("ERROR: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	errors++;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Percentile of sorted samples (p in 0..100), nearest rank. */
static uint64_t percentile(const uint64_t *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	size_t k = (size_t)(p / 100.0 * (double)n + 0.5);
	if (k > 0)
		k--;
	if (k >= n)
		k = n - 1;
	return v[k];
}

/* Durations of the duration-bounded loops. */
static uint64_t run_ns(void) { return quick ? 150000000u : 1500000000u; }

/* ---- the daemon ---- */

struct daemon {
	pid_t pid;
	char dir[64];
	char sock[128];
};

static int connect_sock(const char *path)
{
	int fd = pvusb_unix_connect(path);
	struct timeval tv = {.tv_sec = 5}; /* a hung daemon must not hang us */
	if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0 &&
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	return -1;
}

static int daemon_start(struct daemon *d, const char *bin)
{
	snprintf(d->dir, sizeof(d->dir), "/tmp/pvusb-bench-XXXXXX");
	d->pid = -1;
	if (!mkdtemp(d->dir)) {
		fail("mkdtemp: %s", strerror(errno));
		d->dir[0] = 0;
		return -1;
	}
	snprintf(d->sock, sizeof(d->sock), "%s/pvusbd.sock", d->dir);
	d->pid = fork();
	if (d->pid < 0) {
		fail("fork: %s", strerror(errno));
		return -1;
	}
	daemon_pid = d->pid;
	if (d->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the benchmark */
		execl(bin, bin, "-f", "-q", "-s", d->sock, "--no-state", (char *)NULL);
		fprintf(stderr, "cannot run %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	for (int i = 0; i < 500; i++) { /* up to 5 s for the socket */
		int fd = connect_sock(d->sock);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		int st;
		if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
			d->pid = -1;
			fail("pvusbd (%s) exited before its socket came up (status %d)", bin, st);
			return -1;
		}
		usleep(10000);
	}
	fail("pvusbd (%s) did not come up", bin);
	return -1;
}

static void daemon_stop(struct daemon *d)
{
	daemon_pid = -1;
	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		kill(d->pid, SIGCONT); /* in case it was stopped */
		int st;
		if (waitpid(d->pid, &st, 0) == d->pid && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
			fail("pvusbd exit status %d", st);
		d->pid = -1;
	}
	if (d->dir[0]) {
		unlink(d->sock); /* normally gone already */
		if (rmdir(d->dir) < 0)
			fail("cannot remove %s: %s", d->dir, strerror(errno));
	}
}

static json_object *daemon_vcmd(struct daemon *d, const char *fmt, va_list ap)
{
	char msg[1024], buf[65536];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	int fd = connect_sock(d->sock);
	json_object *o = NULL;
	if (fd >= 0 && send(fd, msg, strlen(msg), 0) >= 0) {
		ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
		if (n > 0) {
			buf[n] = 0;
			o = json_tokener_parse(buf);
		}
	}
	if (fd >= 0)
		close(fd);
	return o;
}

static bool daemon_ok(struct daemon *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool daemon_ok(struct daemon *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	json_object *o = daemon_vcmd(d, fmt, ap), *v;
	va_end(ap);
	bool ok = o && json_object_object_get_ex(o, "ok", &v) && json_object_get_boolean(v);
	if (!ok)
		fail("pvusbd command %s", o ? json_object_to_json_string(o) : "(no reply)");
	json_object_put(o);
	return ok;
}

static json_object *daemon_cmd(struct daemon *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static json_object *daemon_cmd(struct daemon *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	json_object *o = daemon_vcmd(d, fmt, ap);
	va_end(ap);
	return o;
}

/* The controller's response counter, as pvusbd counts it; -1 on error. */
static int64_t daemon_responses(struct daemon *d)
{
	json_object *o = daemon_cmd(d, "{\"cmd\":\"list\",\"frontend\":\"" FE "\"}"), *arr, *v;
	int64_t n = -1;
	if (o && json_object_object_get_ex(o, "controllers", &arr) && json_object_array_length(arr) > 0 &&
	    json_object_object_get_ex(json_object_array_get_idx(arr, 0), "responses", &v))
		n = json_object_get_int64(v);
	json_object_put(o);
	return n;
}

/* ---- was the machine ours while we measured? ----
 * The figures mean something only when both CPUs are ours: a spinning peer
 * that loses its CPU turns a sub-microsecond round trip into a scheduler
 * time slice. Two gauges, for every case and baseline:
 *   others: /proc/stat busy time (steal included) minus our processes' CPU
 *           time, as a share of the machine (10 ms ticks: coarse for short
 *           cases);
 *   wait:   the time our threads (this process, the daemon, a ping-pong
 *           child) spent runnable but without a CPU (schedstat run_delay,
 *           in ns), as a share of the elapsed time. */

static uint64_t child_wait_ns; /* run_delay of ping-pong children, taken before they exit */

static uint64_t proc_ticks(const char *path, bool with_children)
{
	char buf[1024];
	FILE *fp = fopen(path, "r");
	if (!fp)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = 0;
	const char *p = strrchr(buf, ')'); /* comm may hold spaces */
	unsigned long long f[4] = {0};
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu", &f[0],
			 &f[1], &f[2], &f[3]) != 4)
		return 0;
	return f[0] + f[1] + (with_children ? f[2] + f[3] : 0);
}

/* Sum of run_delay over every thread of `pid` (0: this process). */
static uint64_t proc_wait_ns(pid_t pid)
{
	char path[96];
	snprintf(path, sizeof(path), pid ? "/proc/%d/task" : "/proc/self/task", (int)pid);
	DIR *dir = opendir(path);
	if (!dir)
		return 0;
	uint64_t sum = 0;
	struct dirent *de;
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		char file[sizeof(path) + sizeof(de->d_name) + 16];
		snprintf(file, sizeof(file), "%s/%s/schedstat", path, de->d_name);
		FILE *fp = fopen(file, "r");
		unsigned long long run, wait;
		if (fp && fscanf(fp, "%llu %llu", &run, &wait) == 2)
			sum += wait;
		if (fp)
			fclose(fp);
	}
	closedir(dir);
	return sum;
}

/* write() calls of a process (0: this one), from /proc/PID/io. Over a
 * case they are the notifications: the frontend kicks pvusbd with an
 * eventfd write, pvusbd's completions notify the frontend with one. */
static uint64_t proc_writes(pid_t pid)
{
	char path[64], line[128];
	snprintf(path, sizeof(path), pid ? "/proc/%d/io" : "/proc/self/io", (int)pid);
	FILE *fp = fopen(path, "r");
	unsigned long long v = 0;
	while (fp && fgets(line, sizeof(line), fp))
		if (sscanf(line, "syscw: %llu", &v) == 1)
			break;
	if (fp)
		fclose(fp);
	return v;
}

struct meter {
	uint64_t t, busy, total, ours, wait;
	uint64_t fe_writes, be_writes;
};

struct load {
	double others, wait; /* percent */
	bool coarse;         /* too short for the tick-based gauge */
	bool brief;          /* too short for the wait gauge: one wake-up would dominate it */
	uint64_t kicks, notifies; /* eventfd writes: frontend -> pvusbd, pvusbd -> frontend */
};

static struct meter meter_now(void)
{
	struct meter m = {.t = pvusb_now_ns()};
	unsigned long long v[8] = {0};
	FILE *fp = fopen("/proc/stat", "r");
	if (fp) {
		if (fscanf(fp, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
			   &v[5], &v[6], &v[7]) != 8)
			memset(v, 0, sizeof(v));
		fclose(fp);
	}
	m.busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]; /* user nice system irq softirq steal */
	m.total = m.busy + v[3] + v[4];                  /* + idle iowait */
	m.ours = proc_ticks("/proc/self/stat", true);
	m.wait = proc_wait_ns(0) + child_wait_ns;
	m.fe_writes = proc_writes(0);
	if (daemon_pid > 0) {
		m.be_writes = proc_writes(daemon_pid);
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)daemon_pid);
		m.ours += proc_ticks(path, false);
		m.wait += proc_wait_ns(daemon_pid);
	}
	return m;
}

static struct load meter_load(struct meter a)
{
	struct meter b = meter_now();
	struct load l = {0};
	if (b.total > a.total) {
		double other = (double)(b.busy - a.busy) - (double)(b.ours - a.ours);
		l.others = other < 0 ? 0 : 100.0 * other / (double)(b.total - a.total);
	}
	l.coarse = b.total - a.total < 40; /* under 0.4 CPU-seconds of ticks */
	if (b.t > a.t && b.wait >= a.wait)
		l.wait = 100.0 * (double)(b.wait - a.wait) / (double)(b.t - a.t);
	l.brief = b.t - a.t < 50000000u;
	l.kicks = b.fe_writes - a.fe_writes;
	l.notifies = b.be_writes - a.be_writes;
	return l;
}

/* The worse of a case's (a) and its baseline's (b) load, each gauge taken
 * from the measurements long enough for it (from both when neither is);
 * the notification counts are the case's. */
static struct load load_max(struct load a, struct load b)
{
	struct load l = {.coarse = a.coarse && b.coarse, .brief = a.brief && b.brief};
	if ((!a.coarse || l.coarse) && a.others > l.others)
		l.others = a.others;
	if ((!b.coarse || l.coarse) && b.others > l.others)
		l.others = b.others;
	if ((!a.brief || l.brief) && a.wait > l.wait)
		l.wait = a.wait;
	if ((!b.brief || l.brief) && b.wait > l.wait)
		l.wait = b.wait;
	l.kicks = a.kicks;
	l.notifies = a.notifies;
	return l;
}

static bool load_disturbed(struct load l)
{
	return (!l.brief && l.wait > 5.0) || (!l.coarse && l.others > 10.0);
}

/* ---- baselines ---- */

/* memcpy of 64 KiB blocks within a 1 MiB working set (512 KiB -> 512 KiB). */
static double bench_memcpy_mbs(void)
{
	const size_t ws = 1u << 20, half = ws / 2, blk = 65536;
	uint8_t *buf = aligned_alloc(4096, ws);
	if (!buf) {
		fail("out of memory");
		return 0;
	}
	memset(buf, 0x5a, ws);
	uint64_t bytes = 0, t0 = pvusb_now_ns(), end = t0 + run_ns() / 2, t;
	unsigned i = 0;
	do {
		for (int k = 0; k < 64; k++, i++) {
			size_t off = (i % (half / blk)) * blk;
			memcpy(buf + half + off, buf + off, blk);
			__asm__ volatile("" ::: "memory"); /* the copy must happen */
		}
		bytes += 64 * blk;
	} while ((t = pvusb_now_ns()) < end);
	free(buf);
	return (double)bytes / 1e6 / ((double)(t - t0) / 1e9);
}

struct pingpong {
	double rt_per_s; /* round trips per second */
	double median_us;
	double p99_us;
};

/*
 * Two processes spinning on one shared word: the parent writes an odd
 * number, the child answers with the next even one. Timed in batches of
 * 256 round trips (a clock read per round trip would cost a sizeable part
 * of one); the median is taken over the batches' means.
 */
static struct pingpong bench_shm_pingpong(void)
{
	struct pingpong r = {0};
	const uint64_t STOP = UINT64_MAX;
	enum { BATCH = 256, MAXB = 1 << 16 };
	uint64_t *word = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint64_t *batch = calloc(MAXB, sizeof(uint64_t));
	if (word == MAP_FAILED || !batch) {
		fail("shm ping-pong: out of memory");
		free(batch);
		return r;
	}
	*word = 0;
	pid_t pid = fork();
	if (pid < 0) {
		fail("fork: %s", strerror(errno));
		munmap(word, 4096);
		free(batch);
		return r;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		uint64_t last = 0;
		for (;;) {
			uint64_t v;
			while ((v = __atomic_load_n(word, __ATOMIC_ACQUIRE)) == last)
				pvusb_cpu_relax();
			if (v == STOP)
				_exit(0);
			last = v + 1;
			__atomic_store_n(word, last, __ATOMIC_RELEASE);
		}
	}
	uint64_t seq = 0, nb = 0, t0 = pvusb_now_ns(), t = t0;
	/* warm-up: both sides running and spinning (bounded: on a busy
	 * machine one round trip can cost a scheduler time slice) */
	for (int i = 0; i < 10000 && pvusb_now_ns() - t0 < 50000000u; i++) {
		__atomic_store_n(word, ++seq, __ATOMIC_RELEASE);
		while (__atomic_load_n(word, __ATOMIC_ACQUIRE) != seq + 1)
			pvusb_cpu_relax();
		seq++;
	}
	t0 = t = pvusb_now_ns();
	uint64_t end = t0 + run_ns() * 2 / 3;
	while ((t < end || nb == 0) && nb < MAXB) {
		uint64_t b0 = t;
		for (int i = 0; i < BATCH; i++) {
			__atomic_store_n(word, ++seq, __ATOMIC_RELEASE);
			while (__atomic_load_n(word, __ATOMIC_ACQUIRE) != seq + 1)
				pvusb_cpu_relax();
			seq++;
		}
		t = pvusb_now_ns();
		batch[nb++] = t - b0;
	}
	child_wait_ns += proc_wait_ns(pid);
	__atomic_store_n(word, STOP, __ATOMIC_RELEASE);
	waitpid(pid, NULL, 0);
	qsort(batch, nb, sizeof(uint64_t), cmp_u64);
	r.rt_per_s = (double)(nb * BATCH) / ((double)(t - t0) / 1e9);
	r.median_us = (double)percentile(batch, nb, 50) / BATCH / 1000.0;
	r.p99_us = (double)percentile(batch, nb, 99) / BATCH / 1000.0;
	munmap(word, 4096);
	free(batch);
	return r;
}

/* Two processes waking each other through a pair of eventfds (blocking). */
static struct pingpong bench_eventfd_pingpong(void)
{
	struct pingpong r = {0};
	enum { MAXS = 200000 };
	int ping = eventfd(0, EFD_CLOEXEC), pong = eventfd(0, EFD_CLOEXEC);
	uint64_t *s = calloc(MAXS, sizeof(uint64_t));
	if (ping < 0 || pong < 0 || !s) {
		fail("eventfd ping-pong: %s", strerror(errno));
		goto out;
	}
	pid_t pid = fork();
	if (pid < 0) {
		fail("fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;) {
			uint64_t v;
			if (read(ping, &v, sizeof(v)) != sizeof(v) || v != 1)
				_exit(0); /* 2 = stop */
			if (write(pong, &v, sizeof(v)) != sizeof(v))
				_exit(1);
		}
	}
	uint64_t one = 1, two = 2, v, n = 0, t0 = pvusb_now_ns(), t;
	bool broken = false;
	for (int i = 0; i < 200 && !broken && pvusb_now_ns() - t0 < 50000000u; i++) /* warm-up */
		broken = write(ping, &one, 8) != 8 || read(pong, &v, 8) != 8;
	t0 = t = pvusb_now_ns();
	uint64_t end = t0 + run_ns() * 2 / 3;
	while (!broken && (t < end || n == 0) && n < MAXS) {
		uint64_t a = t;
		broken = write(ping, &one, 8) != 8 || read(pong, &v, 8) != 8;
		t = pvusb_now_ns();
		s[n++] = t - a;
	}
	child_wait_ns += proc_wait_ns(pid);
	if (write(ping, &two, 8) != 8)
		broken = true;
	waitpid(pid, NULL, 0);
	if (broken)
		fail("eventfd ping-pong broke");
	qsort(s, n, sizeof(uint64_t), cmp_u64);
	r.rt_per_s = (double)n / ((double)(t - t0) / 1e9);
	r.median_us = (double)percentile(s, n, 50) / 1000.0;
	r.p99_us = (double)percentile(s, n, 99) / 1000.0;
out:
	if (ping >= 0)
		close(ping);
	if (pong >= 0)
		close(pong);
	free(s);
	return r;
}

/* ---- streams of URBs, 16 in flight ---- */

struct stream {
	struct pvusb_front *f;
	struct pvusb_urb urb[NURB];
	bool stopping;       /* deadline passed: no more resubmits */
	bool stuck;          /* URBs may still be in flight: no further case can run */
	unsigned inflight;
	uint64_t done, bytes, failed;
	uint64_t total_done; /* every completion, warm-up included */
	uint32_t want_len;
};

static void stream_report(struct stream *s, struct pvusb_urb *u, const char *what)
{
	s->failed++;
	if (s->failed <= 5)
		fail("%s: URB %ld status %d, actual %u of %u", what, (long)(u - s->urb), u->status,
		     u->actual_length, u->length);
}

static void stream_complete(struct pvusb_urb *u)
{
	struct stream *s = u->user;
	s->inflight--;
	s->done++;
	s->total_done++;
	s->bytes += u->actual_length;
	if (u->status != 0 || u->actual_length != s->want_len)
		stream_report(s, u, u->in ? "bulk IN" : "bulk OUT");
	if (s->stopping)
		return;
	int rc = pvusb_front_submit(s->f, u); /* keep 16 in flight */
	if (rc < 0) {
		s->failed++;
		fail("resubmit: %s", strerror(-rc));
		s->stopping = true;
		return;
	}
	s->inflight++;
}

/* Run the stream for `ns`; returns the elapsed time. */
static uint64_t stream_run(struct stream *s, uint64_t ns)
{
	s->stopping = false;
	s->done = s->bytes = 0;
	uint64_t t0 = pvusb_now_ns(), end = t0 + ns;
	for (int i = 0; i < NURB; i++) {
		int rc = pvusb_front_submit(s->f, &s->urb[i]);
		if (rc < 0) {
			fail("submit: %s", strerror(-rc));
			s->failed++;
			s->stopping = true;
			break;
		}
		s->inflight++;
	}
	while (s->inflight) {
		int n = pvusb_front_wait(s->f, 2000);
		if (n <= 0) {
			if (n < 0)
				fail("pvusb_front_wait: %s", strerror(-n));
			else
				fail("no completion for 2 s (%u in flight)", s->inflight);
			s->failed++;
			s->stuck = true;
			return pvusb_now_ns() - t0;
		}
		if (!s->stopping && pvusb_now_ns() >= end)
			s->stopping = true;
	}
	return pvusb_now_ns() - t0;
}

static bool stream_init(struct stream *s, struct pvusb_front *f, bool in, uint32_t len, uint8_t ep,
			bool alloc)
{
	memset(s, 0, sizeof(*s));
	s->f = f;
	s->want_len = len;
	for (int i = 0; i < NURB; i++) {
		void *buf = NULL;
		if (alloc) {
			buf = pvusb_front_alloc(f, len);
			if (!buf) {
				fail("pvusb_front_alloc(%u) failed", len);
				return false;
			}
		}
		s->urb[i] = (struct pvusb_urb){.port = PORT, .devaddr = ADDR, .type = USBIF_PIPE_TYPE_BULK,
					       .endpoint = ep, .in = in, .length = len, .buffer = buf,
					       .complete = stream_complete, .user = s, .id = -1};
	}
	return true;
}

static uint8_t pattern_byte(size_t k) { return (uint8_t)((k % BULK_MPS) % 63); }

/* Throughput in MB/s; s->failed counts what went wrong. */
static double bench_bulk(struct pvusb_front *f, struct stream *s, bool in)
{
	pvusb_front_wait(f, 0);
	stream_run(s, run_ns() / 10); /* warm-up: map pages, wake both sides */
	if (s->stuck)
		return 0;
	uint64_t ns = stream_run(s, run_ns());
	double mbs = (double)s->bytes / 1e6 / ((double)ns / 1e9);
	note("  %s: %llu transfers, %.1f MB in %.3f s\n", in ? "bulk IN" : "bulk OUT",
	     (unsigned long long)s->done, (double)s->bytes / 1e6, (double)ns / 1e9);
	if (s->failed)
		fail("%s: %llu of %llu transfers failed", in ? "bulk IN" : "bulk OUT",
		     (unsigned long long)s->failed, (unsigned long long)s->total_done);
	if (in && !s->stuck) { /* the data itself: every buffer follows the source pattern */
		for (int i = 0; i < NURB; i++) {
			const uint8_t *b = s->urb[i].buffer;
			for (size_t k = 0; k < BULK_LEN; k++)
				if (b[k] != pattern_byte(k)) {
					s->failed++;
					fail("bulk IN buffer %d byte %zu is %u, expected %u", i, k, b[k],
					     pattern_byte(k));
					break;
				}
		}
	}
	return mbs;
}

/* ---- control round trips ---- */

struct ctl_result {
	double median_us, p99_us, mean_us;
	unsigned n;
	uint64_t done, failed; /* URBs completed (warm-up included), and failed */
};

static struct ctl_result bench_control(struct pvusb_front *f, const uint8_t want[18])
{
	struct ctl_result r = {0};
	unsigned n = quick ? 2000 : 20000, warm = quick ? 200 : 2000;
	uint64_t *s = calloc(n, sizeof(uint64_t));
	uint8_t *buf = pvusb_front_alloc(f, 4096);
	if (!s || !buf) {
		fail("control: out of memory");
		free(s);
		return r;
	}
	const uint8_t setup[8] = {0x80, USB_REQ_GET_DESCRIPTOR, 0, 1, 0, 0, 18, 0};
	struct pvusb_urb u = {.port = PORT, .devaddr = ADDR, .type = USBIF_PIPE_TYPE_CTRL, .in = true,
			      .length = 18, .buffer = buf, .id = -1};
	memcpy(u.setup, setup, 8);
	unsigned got = 0;
	uint64_t total = 0;
	for (unsigned i = 0; i < warm + n; i++) {
		memset(buf, 0, 18); /* every round trip must bring the descriptor anew */
		uint64_t a = pvusb_now_ns();
		int rc = pvusb_front_run(f, &u, 1000);
		uint64_t b = pvusb_now_ns();
		r.done++;
		if (rc != 0 || u.actual_length != 18 || memcmp(buf, want, 18) != 0) {
			if (++r.failed <= 5)
				fail("GET_DESCRIPTOR #%u: status %d, actual %u%s", i, rc, u.actual_length,
				     rc == 0 && u.actual_length == 18 ? ", wrong bytes" : "");
			if (rc == -EPIPE || rc == -ETIMEDOUT)
				break; /* (a timed-out URB also cost an unlink) */
		}
		if (i >= warm) {
			s[got++] = b - a;
			total += b - a;
		}
	}
	n = got;
	qsort(s, n, sizeof(uint64_t), cmp_u64);
	if (r.failed)
		fail("control: %llu of %llu round trips failed", (unsigned long long)r.failed,
		     (unsigned long long)r.done);
	r.n = n;
	r.median_us = (double)percentile(s, n, 50) / 1000.0;
	r.p99_us = (double)percentile(s, n, 99) / 1000.0;
	r.mean_us = n ? (double)total / n / 1000.0 : 0;
	free(s);
	return r;
}

/* ---- 0-byte URBs ---- */

static double bench_zero(struct pvusb_front *f, struct stream *s)
{
	stream_run(s, run_ns() / 10);
	if (s->stuck)
		return 0;
	uint64_t ns = stream_run(s, run_ns());
	note("  0-byte bulk: %llu URBs in %.3f s\n", (unsigned long long)s->done, (double)ns / 1e9);
	if (s->failed)
		fail("0-byte bulk: %llu of %llu URBs failed", (unsigned long long)s->failed,
		     (unsigned long long)s->total_done);
	return (double)s->done / ((double)ns / 1e9);
}

/* ---- reporting ---- */

struct row {
	const char *key, *name;
	char figure[40], baseline[48], ratio[16];
	const char *target; /* NULL: no target */
	const char *label;  /* what the target column says then */
	bool met;
	double value, base_value, ratio_value;
	const char *unit;
	struct load load; /* the case's and its baseline's, whichever is worse */
	uint64_t failed;
	uint64_t urbs;    /* completed in the measured window (warm-up included) */
};

static struct row rows[8];
static unsigned nrows;

static struct row *add_row(const char *key, const char *name, struct load load)
{
	struct row *r = &rows[nrows++];
	memset(r, 0, sizeof(*r));
	r->key = key;
	r->name = name;
	r->load = load;
	return r;
}

/* Every URB we completed must be one response pvusbd counted. */
static void check_responses(struct daemon *d, int64_t before, uint64_t completed, const char *what)
{
	int64_t after = daemon_responses(d);
	if (before < 0 || after < 0)
		fail("%s: cannot read pvusbd's response counter", what);
	else if ((uint64_t)(after - before) != completed)
		fail("%s: pvusbd counted %lld responses, the frontend completed %llu", what,
		     (long long)(after - before), (unsigned long long)completed);
}

/* One bulk case: 64 KiB URBs, 16 in flight, IN (pattern checked after) or
 * OUT (buffers hold the pattern, the sink checks it). */
struct bulk_case {
	double mbs;
	struct load load;
	uint64_t urbs, failed;
	bool ran;
};

/* Returns true when the stream got stuck and the run must stop. */
static bool run_bulk(struct daemon *d, struct pvusb_front *f, bool in, struct bulk_case *bc)
{
	struct stream s;
	note(in ? "bulk IN...\n" : "bulk OUT...\n");
	if (!stream_init(&s, f, in, BULK_LEN, in ? 1 : 2, true)) {
		bc->failed = 1;
		return false;
	}
	for (int i = 0; i < NURB; i++)
		for (size_t k = 0; k < BULK_LEN; k++) /* fault the pages in; OUT carries the pattern */
			((uint8_t *)s.urb[i].buffer)[k] = in ? 0 : pattern_byte(k);
	int64_t r0 = daemon_responses(d);
	struct meter m = meter_now();
	bc->mbs = bench_bulk(f, &s, in);
	bc->load = meter_load(m);
	check_responses(d, r0, s.total_done, in ? "bulk IN" : "bulk OUT");
	bc->urbs = s.total_done;
	bc->failed = s.failed;
	bc->ran = !s.stuck;
	return s.stuck;
}

/* A row's figure, its same-run baseline and their ratio. */
static void row_values(struct row *r, double value, double base, const char *unit, int ratio_digits)
{
	r->value = value, r->base_value = base, r->unit = unit;
	r->ratio_value = value / base;
	snprintf(r->ratio, sizeof(r->ratio), "%.*f", ratio_digits, r->ratio_value);
}

static void add_bulk_row(const char *key, const char *name, const struct bulk_case *bc,
			 double memcpy_mbs, struct load memcpy_load)
{
	if (!bc->ran)
		return;
	struct row *r = add_row(key, name, load_max(bc->load, memcpy_load));
	row_values(r, bc->mbs, memcpy_mbs, "MB/s", 2);
	snprintf(r->figure, sizeof(r->figure), "%.0f MB/s", bc->mbs);
	snprintf(r->baseline, sizeof(r->baseline), "memcpy %.0f MB/s", memcpy_mbs);
	r->target = ">= 0.50";
	r->failed = bc->failed;
	r->urbs = bc->urbs;
	r->met = r->ratio_value >= 0.50 && !bc->failed;
}

int main(int argc, char **argv)
{
	const char *bin = getenv("PVUSBD") ? getenv("PVUSBD") : PVUSBD_PATH;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = true;
		else if (!strcmp(argv[i], "--json"))
			json_out = true;
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("Usage: %s [--quick] [--json] [PVUSBD]\n"
			       "Benchmarks pvusbd over the local transport; every figure is printed\n"
			       "next to a baseline measured in the same run.\n"
			       "  --quick  10x less work (CI smoke)\n"
			       "  --json   machine-readable output on stdout\n"
			       "PVUSBD defaults to $PVUSBD, then %s\n"
			       "Exit status: 0, or 1 when a transfer (or anything else) failed.\n",
			       argv[0], PVUSBD_PATH);
			return 0;
		} else if (argv[i][0] != '-')
			bin = argv[i];
		else {
			fprintf(stderr, "%s: unknown option %s\n", argv[0], argv[i]);
			return 2;
		}
	}
	if (access(bin, X_OK) < 0) {
		fprintf(stderr, "%s: cannot run pvusbd at %s: %s\n", argv[0], bin, strerror(errno));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	cpu_set_t cpus;
	int ncpu = sched_getaffinity(0, sizeof(cpus), &cpus) == 0 ? CPU_COUNT(&cpus) : 0;
	note("pvusb-bench: pvusbd %s, %d CPUs%s\n", bin, ncpu, quick ? ", quick" : "");

	/* baselines first, before the daemon exists */
	note("baselines...\n");
	struct meter m = meter_now();
	double memcpy_mbs = bench_memcpy_mbs();
	struct load memcpy_load = meter_load(m);
	m = meter_now();
	struct pingpong shm = bench_shm_pingpong();
	struct load shm_load = meter_load(m);
	m = meter_now();
	struct pingpong efd = bench_eventfd_pingpong();
	struct load efd_load = meter_load(m);
	efd_load.wait = 0; /* its wake-ups are run-queue waits by design: not a disturbance */
	note("  memcpy %.0f MB/s; shm ping-pong median %.3f us (%.2f M rt/s); eventfd ping-pong "
	     "median %.1f us\n", memcpy_mbs, shm.median_us, shm.rt_per_s / 1e6, efd.median_us);

	struct daemon d = {0};
	struct pvusb_front *f = NULL;
	struct bulk_case bin_case = {0}, bout_case = {0};
	double urbs = 0;
	struct load zero_load = {0}, ctl_load = {0};
	uint64_t zero_urbs = 0;
	struct ctl_result ctl = {0};
	uint64_t zero_failed = 0, ctl_failed = 0;
	bool ran = false;                                    /* the daemon came up and enumerated */
	bool zero_ran = false, ctl_ran = false;

	if (daemon_start(&d, bin) < 0)
		goto done;
	if (!daemon_ok(&d, "{\"cmd\":\"hc-create\",\"frontend\":\"" FE "\",\"usb-ver\":2,\"ports\":8}") ||
	    !daemon_ok(&d, "{\"cmd\":\"attach\",\"frontend\":\"" FE "\",\"port\":%d,\"device\":\"sourcesink\"}",
		       PORT))
		goto done;
	char err[256];
	int rc = pvusb_front_connect(d.sock, FE, 0, NULL, &f, err, sizeof(err));
	if (rc < 0) {
		fail("pvusb_front_connect: %s", err);
		f = NULL;
		goto done;
	}
	for (int i = 0; i < 200 && pvusb_front_port_speed(f, PORT) != USBIF_SPEED_HIGH; i++)
		pvusb_front_wait(f, 10);
	if (pvusb_front_port_speed(f, PORT) != USBIF_SPEED_HIGH) {
		fail("port %d never announced a high-speed device", PORT);
		goto done;
	}
	struct pvusb_front_dev dev;
	rc = pvusb_front_enumerate(f, PORT, ADDR, &dev);
	if (rc < 0) {
		fail("enumeration: %s (%d)", strerror(-rc), rc);
		goto done;
	}
	note("enumerated %s (%04x:%04x) at address %u\n", dev.product,
	     dev.dev_desc[8] | dev.dev_desc[9] << 8, dev.dev_desc[10] | dev.dev_desc[11] << 8, dev.addr);
	ran = true;

	struct stream s;
	int64_t r0;
	if (run_bulk(&d, f, true, &bin_case) || run_bulk(&d, f, false, &bout_case))
		goto done;

	note("0-byte bulk...\n");
	stream_init(&s, f, true, 0, 1, false);
	r0 = daemon_responses(&d);
	m = meter_now();
	urbs = bench_zero(f, &s);
	zero_load = meter_load(m);
	check_responses(&d, r0, s.total_done, "0-byte bulk");
	zero_urbs = s.total_done;
	zero_failed = s.failed;
	zero_ran = !s.stuck;
	if (s.stuck)
		goto done;

	note("control round trips...\n");
	r0 = daemon_responses(&d);
	m = meter_now();
	ctl = bench_control(f, dev.dev_desc);
	ctl_load = meter_load(m);
	check_responses(&d, r0, ctl.done, "control");
	ctl_failed = ctl.failed;
	ctl_ran = ctl.n > 0;
	if (pvusb_front_dead(f))
		fail("the frontend saw the backend break the protocol");

done:
	if (f)
		pvusb_front_close(f);
	daemon_stop(&d);

	/* ---- the table ---- */
	struct row *r;
	add_bulk_row("bulk_in_64k_x16", "bulk IN 64KiB x16", &bin_case, memcpy_mbs, memcpy_load);
	add_bulk_row("bulk_out_64k_x16", "bulk OUT 64KiB x16 verified", &bout_case, memcpy_mbs,
		     memcpy_load);
	if (zero_ran) {
		r = add_row("zero_byte_bulk_x16", "0-byte bulk x16", load_max(zero_load, shm_load));
		row_values(r, urbs, shm.rt_per_s, "URB/s", 2);
		snprintf(r->figure, sizeof(r->figure), "%.3f M URB/s", urbs / 1e6);
		snprintf(r->baseline, sizeof(r->baseline), "shm ping-pong %.3f M rt/s", shm.rt_per_s / 1e6);
		r->target = ">= 1 M URB/s";
		r->failed = zero_failed;
		r->urbs = zero_urbs;
		r->met = urbs >= 1e6 && !zero_failed;
	}
	if (ctl_ran) {
		r = add_row("control_rtt_median", "control GET_DESC(18) median", load_max(ctl_load, shm_load));
		row_values(r, ctl.median_us, shm.median_us, "us", 1);
		snprintf(r->figure, sizeof(r->figure), "%.2f us", ctl.median_us);
		snprintf(r->baseline, sizeof(r->baseline), "shm ping-pong %.3f us", shm.median_us);
		r->target = "<= 5 us";
		r->failed = ctl_failed;
		r->urbs = ctl.done;
		r->met = ctl.median_us > 0 && ctl.median_us <= 5.0 && !ctl_failed;

		r = add_row("control_rtt_p99", "control GET_DESC(18) p99", load_max(ctl_load, shm_load));
		row_values(r, ctl.p99_us, shm.p99_us, "us", 1);
		snprintf(r->figure, sizeof(r->figure), "%.2f us", ctl.p99_us);
		snprintf(r->baseline, sizeof(r->baseline), "shm ping-pong %.3f us", shm.p99_us);
		r->label = "-";

		r = add_row("control_rtt_vs_eventfd", "control median vs eventfd", load_max(ctl_load, efd_load));
		row_values(r, ctl.median_us, efd.median_us, "us", 3);
		snprintf(r->figure, sizeof(r->figure), "%.2f us", ctl.median_us);
		snprintf(r->baseline, sizeof(r->baseline), "eventfd ping-pong %.1f us", efd.median_us);
		r->label = "(reference)";
	}
	bool disturbed = false;
	for (unsigned i = 0; i < nrows; i++)
		disturbed = disturbed || load_disturbed(rows[i].load);

	if (json_out) {
		json_object *o = json_object_new_object(), *cases = json_object_new_array();
		json_object_object_add(o, "quick", json_object_new_boolean(quick));
		json_object_object_add(o, "cpus", json_object_new_int(ncpu));
		json_object *b = json_object_new_object();
		json_object_object_add(b, "memcpy_mb_s", json_object_new_double(memcpy_mbs));
		json_object_object_add(b, "shm_pingpong_rt_s", json_object_new_double(shm.rt_per_s));
		json_object_object_add(b, "shm_pingpong_median_us", json_object_new_double(shm.median_us));
		json_object_object_add(b, "shm_pingpong_p99_us", json_object_new_double(shm.p99_us));
		json_object_object_add(b, "eventfd_pingpong_rt_s", json_object_new_double(efd.rt_per_s));
		json_object_object_add(b, "eventfd_pingpong_median_us", json_object_new_double(efd.median_us));
		json_object_object_add(b, "eventfd_pingpong_p99_us", json_object_new_double(efd.p99_us));
		json_object_object_add(o, "baselines", b);
		for (unsigned i = 0; i < nrows; i++) {
			struct row *c = &rows[i];
			json_object *e = json_object_new_object();
			json_object_object_add(e, "case", json_object_new_string(c->key));
			json_object_object_add(e, "figure", json_object_new_double(c->value));
			json_object_object_add(e, "unit", json_object_new_string(c->unit));
			json_object_object_add(e, "baseline", json_object_new_double(c->base_value));
			json_object_object_add(e, "baseline_what", json_object_new_string(c->baseline));
			json_object_object_add(e, "ratio", json_object_new_double(c->ratio_value));
			json_object_object_add(e, "target", c->target ? json_object_new_string(c->target) : NULL);
			json_object_object_add(e, "met", c->target ? json_object_new_boolean(c->met) : NULL);
			json_object_object_add(e, "failed", json_object_new_int64((int64_t)c->failed));
			json_object_object_add(e, "other_load_pct", json_object_new_double(c->load.others));
			json_object_object_add(e, "cpu_wait_pct", json_object_new_double(c->load.wait));
			json_object_object_add(e, "gauges_too_short",
					       json_object_new_boolean(c->load.coarse && c->load.brief));
			json_object_object_add(e, "disturbed", json_object_new_boolean(load_disturbed(c->load)));
			if (c->urbs) {
				json_object_object_add(e, "urbs", json_object_new_int64((int64_t)c->urbs));
				json_object_object_add(e, "kicks", json_object_new_int64((int64_t)c->load.kicks));
				json_object_object_add(e, "notifies",
						       json_object_new_int64((int64_t)c->load.notifies));
			}
			json_object_array_add(cases, e);
		}
		json_object_object_add(o, "cases", cases);
		if (ctl_ran) {
			json_object *cj = json_object_new_object();
			json_object_object_add(cj, "n", json_object_new_int((int)ctl.n));
			json_object_object_add(cj, "median_us", json_object_new_double(ctl.median_us));
			json_object_object_add(cj, "p99_us", json_object_new_double(ctl.p99_us));
			json_object_object_add(cj, "mean_us", json_object_new_double(ctl.mean_us));
			json_object_object_add(o, "control", cj);
		}
		json_object_object_add(o, "disturbed", json_object_new_boolean(disturbed));
		json_object_object_add(o, "errors", json_object_new_int(errors));
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else if (ran && nrows == 0) {
		printf("no case completed: see the errors\n");
	} else if (ran) {
		if (!(bin_case.ran && bout_case.ran && zero_ran && ctl_ran))
			printf("\n(cases missing below did not run: see the errors)");
		printf("\n%-29s %-15s %-28s %-7s %-13s %s\n", "case", "figure", "baseline (same run)", "ratio",
		       "target", "others/wait");
		for (unsigned i = 0; i < nrows; i++) {
			char load[32];
			snprintf(load, sizeof(load), "%.0f%%%s/%.0f%%%s%s", rows[i].load.others,
				 rows[i].load.coarse ? "~" : "", rows[i].load.wait,
				 rows[i].load.brief ? "~" : "", load_disturbed(rows[i].load) ? " !" : "");
			printf("%-29s %-15s %-28s %-7s %-13s %s\n", rows[i].name, rows[i].figure,
			       rows[i].baseline, rows[i].ratio, rows[i].target ? rows[i].target : rows[i].label,
			       load);
		}
		if (ctl_ran)
			printf("control: %u round trips, mean %.2f us.\n", ctl.n, ctl.mean_us);
		printf("ratio = figure / baseline.\n"
		       "others/wait = CPU share other processes took / time our threads waited for a CPU,\n"
		       "during the case or its baseline (~: too short to judge; ! : disturbed).\n\n");
		printf("notifications (eventfd writes) per 1000 URBs, frontend->pvusbd / pvusbd->frontend:\n");
		for (unsigned i = 0; i < nrows; i++)
			if (rows[i].urbs)
				printf("  %-29s %8.2f / %-8.2f (%llu URBs)\n", rows[i].name,
				       1000.0 * (double)rows[i].load.kicks / (double)rows[i].urbs,
				       1000.0 * (double)rows[i].load.notifies / (double)rows[i].urbs,
				       (unsigned long long)rows[i].urbs);
		printf("\n");
		for (unsigned i = 0; i < nrows; i++)
			if (rows[i].target)
				printf("target %-29s %-13s %s%s\n", rows[i].name, rows[i].target,
				       rows[i].met ? "met" : "NOT MET",
				       rows[i].failed ? " (transfers failed)" : "");
		if (disturbed)
			printf("WARNING: the machine was not ours during a case marked '!' (others > 10%% "
			       "or wait > 5%%);\nits figures are disturbed. Rerun on a quiet machine.\n");
	}
	if (errors)
		fprintf(stderr, "pvusb-bench: %d error(s)\n", errors);
	return errors ? 1 : 0;
}
