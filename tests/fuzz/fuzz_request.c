/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the whole request path, in one process: this file is
 * a frontend on the `local` transport (memfd pages + eventfds), talking to a
 * real controller (pvusb_hc_*) with real emulated devices behind it:
 *   port 1 sourcesink (high speed), port 2 tablet (full speed, interrupt IN
 *   waits for input), port 3 storage on a 64 KiB image, port 4 empty.
 *
 * Input layout:
 *   byte 0        flags (below)
 *   byte 1        unplug (below)
 *   148 * n       n urb requests, written to the ring as a frontend would
 *   0..147 bytes  tail: copied to offset 0 of every data page (2..63), so
 *                 OUT buffers, CBWs and isochronous frame descriptors can be
 *                 chosen by the fuzzer
 * Flags:
 *   bit 0  F_KEEP_IDS   leave request ids as given (duplicates included) and
 *                       check responses only as a multiset of ids; otherwise
 *                       the harness patches id = index within the input, so
 *                       every id in flight is distinct and each must be
 *                       answered exactly once (unlink_id can target them)
 *   bit 1  F_UNLINK     at the end, unlink every request still pending, and
 *                       check the targets are answered
 *   bit 2  F_HOSTILE    at the end, push a req_prod more than 16 ahead and
 *                       check the controller marks itself broken (A.6)
 *   bit 3  F_ALWAYS_KICK notify after every push even when the event index
 *                       does not ask (spurious events, A.7); otherwise
 *                       notify only as A.4 says, which also tests that the
 *                       backend's event index never loses a wake-up
 *   bits 4..7           requests per round - 1 (1..16)
 * Unplug:
 *   bits 0..1  port to take the device off (pvusb_hc_detach) in the middle
 *              of the input, 0 for none: every request in flight on it must
 *              be answered by the time detach returns, later ones get
 *              -ENODEV (spec E.6)
 *   bits 2..5  after which round (past the last: after the last)
 *   bit 6      plug a fresh device back at once; otherwise only after the
 *              input (the rest of the input sees an empty port)
 *   bit 7      move the tablet after every round (emul_tablet_input): a
 *              waiting interrupt IN then completes on this thread, not the
 *              controller's, as a real device's completion would
 *
 * The fuzzer may set any field: grefs are bounds-checked by the backend
 * against the 64 pages. The one thing the harness rewrites is a gref naming
 * one of the two ring pages (0 or 1): it is moved to a data page (+2). A
 * hostile frontend may grant its ring pages as buffers, but then the device
 * writes over the rings the harness checks, and no invariant is left to
 * check; a frontend writing garbage indexes is covered by F_HOSTILE.
 *
 * Invariants checked (a violation calls __builtin_trap, a libFuzzer crash):
 * - every request taken from the ring gets exactly one response: each
 *   response's id belongs to a request in flight (a multiset when ids
 *   repeat), no response arrives twice, and after pvusb_hc_disconnect()
 *   nothing is left unanswered;
 * - the backend never posts more than 16 responses ahead (B.9);
 * - response fields: a status the protocol knows, 0 <= actual_length <=
 *   buffer length, error_count and start_frame 0 for non-isochronous;
 * - when every request of a round has been answered: maps_live == 0,
 *   inflight == 0, and the controller's counters equal what the ring shows;
 *   when some wait in a device, maps_live is exactly the segments they map;
 * - a round that leaves requests pending is only accepted once the
 *   controller has taken every request (pvusb_hc_stats().requests), so a
 *   lost wake-up or a stuck request is a 5 s timeout, reported as a crash
 *   (a disconnect that never finishes is libFuzzer's -timeout);
 * - no stray writes: after the input, every byte of the data pages that no
 *   request let the backend write (IN buffers, isochronous descriptors)
 *   still holds what the input started with;
 * - an unlink (F_UNLINK) of a pending request, with no SET_ADDRESS since the
 *   request went out, answers 0 and its target is answered too;
 * - the controller is never broken unless F_HOSTILE made it so, and then it
 *   must be.
 *
 * Requests that may legitimately stay pending forever (tablet interrupt IN
 * with no input, storage bulk IN before a CBW) are the reason for the end of
 * each input: every input ends with pvusb_hc_disconnect(), which must
 * cancel and answer everything still in flight (design.md 1), and the next
 * input starts on freshly initialised rings with devices reset (the core
 * resets every device when the frontend goes away) and a zeroed storage
 * image, so each input runs from the same state and crashes reproduce.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "pvusb/core.h"
#include "pvusb/local.h"
#include "pvusb/request.h"
#include "pvusb/ring.h"
#include "pvusb/usbif.h"
#include "dev/emul.h"
#include "util/log.h"

#define PAGES 64u
#define URB_REF 0u
#define CONN_REF 1u
#define FIRST_DATA_PAGE 2u
#define NPORTS 4u
#define REQ_BYTES ((size_t)sizeof(struct usbif_urb_request))
#define MAX_REQS 64u          /* requests taken from one input */
#define MAX_TRACK 128u        /* outstanding entries (<= 16 at a time) */
#define IMAGE_BYTES (64u * 1024u)
#define DEADLINE_S 5ull /* generous: a loaded 2-CPU machine under ASan */
#define ROUND_DEADLINE_NS (DEADLINE_S * 1000000000ull)

enum {
	F_KEEP_IDS = 1u << 0,
	F_UNLINK = 1u << 1,
	F_HOSTILE = 1u << 2,
	F_ALWAYS_KICK = 1u << 3,
};

static const uint8_t expect_speed[NPORTS + 1] = {0, USBIF_SPEED_HIGH, USBIF_SPEED_FULL,
						 USBIF_SPEED_HIGH, 0};

enum {
	U_PORT_MASK = 3u,
	U_ROUND_SHIFT = 2,
	U_ROUND_MASK = 15u,
	U_REPLUG_NOW = 1u << 6,
	U_INPUT = 1u << 7,
};

static struct {
	bool ready;
	bool trace;            /* PVUSB_FUZZ_TRACE: print every request and response */
	char storage_name[64]; /* storage:/proc/self/fd/N, to plug it again */
	struct pvusb_hc *hc;
	int memfd, kick_be, kick_fe, image_fd;
	uint8_t *mem; /* our own mapping of the memfd */
	struct usbif_ring urb, conn;
	bool connected;
	uint64_t base_requests, base_responses; /* controller counters at connect */
} G;

/* One request in flight, as the frontend remembers it. */
struct entry {
	uint16_t id;
	bool unlink;
	uint8_t type;
	bool nbuf_ok; /* nr_buffer_segs <= 16 */
	uint32_t data_len;
	uint32_t maps;      /* grant mappings it holds while pending in a device */
	uint16_t npackets;
	uint32_t pipe;
	unsigned seq;       /* order of submission within the input */
	int unlinked_by;    /* index into ctx.unl of the cleanup unlink, or -1 */
	bool ambiguous;     /* a response came for its id while another had it too */
};

struct cleanup_unlink {
	uint16_t id, target_id;
	unsigned target_seq;
	bool answered;
	int32_t status;
};

struct ctx {
	unsigned flags, unplug;
	unsigned unplugged;  /* port taken off during this input, 0 if none */
	bool replugged;
	struct entry out[MAX_TRACK];
	unsigned nout;
	uint64_t sent, answered; /* since connect */
	unsigned seq;
	bool any_set_address;
	unsigned last_set_address_seq;
	bool hostile_sent;
	struct cleanup_unlink unl[USB_URB_RING_SIZE];
	unsigned nunl;
};

static void mark_writable(const struct usbif_urb_request *q);

/* ---- reporting ---- */

__attribute__((noreturn, format(printf, 1, 2))) static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "fuzz_request: invariant violated: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	__builtin_trap();
}

__attribute__((noreturn, format(printf, 1, 2))) static void setup_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "fuzz_request: setup failed: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	abort();
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the frontend's side of the transport ---- */

static void kick(void)
{
	uint64_t one = 1;
	if (write(G.kick_be, &one, sizeof(one)) < 0 && errno != EAGAIN)
		setup_fail("kick: %s", strerror(errno));
}

static void drain_fe(void)
{
	uint64_t v;
	ssize_t n = read(G.kick_fe, &v, sizeof(v));
	(void)n;
}

/* Sleep until the backend notifies, at most `us` microseconds. */
static void wait_event(long us)
{
	struct pollfd pfd = {.fd = G.kick_fe, .events = POLLIN};
	struct timespec ts = {.tv_sec = 0, .tv_nsec = us * 1000};
	if (ppoll(&pfd, 1, &ts, NULL) > 0)
		drain_fe();
}

static void stats(struct pvusb_hc_stats *st)
{
	memset(st, 0, sizeof(*st));
	pvusb_hc_stats(G.hc, st);
}

static void connect_frontend(void)
{
	/* fresh rings (A.3), data pages zeroed by the caller */
	usbif_urb_front_init(&G.urb, G.mem + (size_t)URB_REF * USBIF_PAGE_SIZE);
	usbif_conn_front_init(&G.conn, G.mem + (size_t)CONN_REF * USBIF_PAGE_SIZE);
	for (uint16_t i = 0; i < USB_CONN_RING_SIZE; i++) {
		struct usbif_conn_request *t = usbif_ring_slot(&G.conn, G.conn.prod_pvt++);
		t->id = i;
	}
	usbif_front_push_requests(&G.conn);

	/* the transport owns what it is given: hand it duplicates */
	int memfd = dup(G.memfd), kb = dup(G.kick_be), kf = dup(G.kick_fe);
	if (memfd < 0 || kb < 0 || kf < 0)
		setup_fail("dup: %s", strerror(errno));
	struct pvusb_xport *xp;
	char err[256] = "";
	int rc = pvusb_local_xport_create(memfd, kb, kf, PAGES, URB_REF, CONN_REF, "fuzz", &xp, err,
					  sizeof(err));
	if (rc < 0)
		setup_fail("pvusb_local_xport_create: %d %s", rc, err);
	rc = pvusb_hc_connect(G.hc, xp);
	if (rc < 0)
		setup_fail("pvusb_hc_connect: %d", rc);
	G.connected = true;
	struct pvusb_hc_stats st;
	stats(&st);
	if (!st.connected || st.broken || st.inflight != 0)
		die("fresh connection: connected %d broken %d inflight %u", st.connected, st.broken,
		    st.inflight);
	G.base_requests = st.requests;
	G.base_responses = st.responses;
}

static const char *dev_name(unsigned port)
{
	return port == 1 ? "sourcesink" : port == 2 ? "tablet" : G.storage_name;
}

static void plug(unsigned port)
{
	struct pvusb_dev *d;
	char err[256] = "";
	int rc = pvusb_dev_open(dev_name(port), &d, err, sizeof(err));
	if (rc < 0)
		setup_fail("pvusb_dev_open(%s): %d %s", dev_name(port), rc, err);
	rc = pvusb_hc_attach(G.hc, port, d);
	if (rc < 0)
		setup_fail("pvusb_hc_attach(%u, %s): %d", port, dev_name(port), rc);
}

static void setup_once(void)
{
	G.trace = getenv("PVUSB_FUZZ_TRACE") != NULL;
	if (!getenv("PVUSB_FUZZ_LOG"))
		pvusb_log_threshold = 0; /* silence per-connect info and once-per-cause warnings */
	signal(SIGPIPE, SIG_IGN);

	struct pvusb_hc_config cfg = {.usb_ver = USBIF_VER_USB20, .num_ports = NPORTS, .devid = 0,
				      .spin_us = 0};
	snprintf(cfg.frontend, sizeof(cfg.frontend), "fuzz");
	int rc = pvusb_hc_create(&cfg, &G.hc);
	if (rc < 0)
		setup_fail("pvusb_hc_create: %d", rc);

	/* the storage image: on tmpfs when there is one, so syncs cost nothing */
	char image[64];
	snprintf(image, sizeof(image), "/dev/shm/pvusb-fuzz-XXXXXX");
	G.image_fd = mkstemp(image);
	if (G.image_fd < 0) {
		snprintf(image, sizeof(image), "/tmp/pvusb-fuzz-XXXXXX");
		G.image_fd = mkstemp(image);
	}
	if (G.image_fd < 0 || ftruncate(G.image_fd, IMAGE_BYTES) < 0)
		setup_fail("image: %s", strerror(errno));

	/* the name reopens our descriptor, so the device can be plugged again
	 * after the file is gone from the directory */
	snprintf(G.storage_name, sizeof(G.storage_name), "storage:/proc/self/fd/%d", G.image_fd);
	for (unsigned port = 1; port <= 3; port++)
		plug(port);
	unlink(image); /* the devices and G.image_fd keep it open */

	G.memfd = memfd_create("pvusb-fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (G.memfd < 0 || ftruncate(G.memfd, (off_t)PAGES * USBIF_PAGE_SIZE) < 0 ||
	    fcntl(G.memfd, F_ADD_SEALS, F_SEAL_SHRINK) < 0)
		setup_fail("memfd: %s", strerror(errno));
	G.mem = mmap(NULL, (size_t)PAGES * USBIF_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		     G.memfd, 0);
	if (G.mem == MAP_FAILED)
		setup_fail("mmap: %s", strerror(errno));
	G.kick_be = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	G.kick_fe = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (G.kick_be < 0 || G.kick_fe < 0)
		setup_fail("eventfd: %s", strerror(errno));
	connect_frontend();
	G.ready = true;
}

/* ---- responses ---- */

static bool known_status(int32_t s)
{
	switch (s) {
	case USBIF_STATUS_OK:
	case USBIF_STATUS_NODEV:
	case USBIF_STATUS_INVAL:
	case USBIF_STATUS_STALL:
	case USBIF_STATUS_IOERROR:
	case USBIF_STATUS_BABBLE:
	case USBIF_STATUS_SHUTDOWN:
	case USBIF_STATUS_NOENT:
	case USBIF_STATUS_REMOTEIO:
	case USBIF_STATUS_CONNRESET:
		return true;
	default:
		return false;
	}
}

static void check_fields(const struct entry *e, const struct usbif_urb_response *r)
{
	if (!known_status(r->status))
		die("id %u pipe %#x: status %d is not a usbif status", r->id, e->pipe, r->status);
	if (r->actual_length < 0)
		die("id %u pipe %#x: negative actual_length %d", r->id, e->pipe, r->actual_length);
	if (e->unlink) {
		if (r->actual_length != 0 || r->error_count != 0 || r->start_frame != 0)
			die("unlink id %u: actual %d error_count %d start_frame %u", r->id,
			    r->actual_length, r->error_count, r->start_frame);
		return;
	}
	if (e->type != USBIF_PIPE_TYPE_ISOC) {
		uint32_t max = e->nbuf_ok ? e->data_len : 0;
		if ((uint32_t)r->actual_length > max)
			die("id %u pipe %#x: actual_length %d > buffer %u", r->id, e->pipe,
			    r->actual_length, max);
		if (r->error_count != 0 || r->start_frame != 0)
			die("id %u pipe %#x: non-isochronous with error_count %d start_frame %u",
			    r->id, e->pipe, r->error_count, r->start_frame);
	} else if (r->error_count < 0 || (uint32_t)r->error_count > e->npackets) {
		die("isochronous id %u: error_count %d of %u packets", r->id, r->error_count,
		    e->npackets);
	}
}

static void consume(struct ctx *c)
{
	bool hostile = false;
	uint32_t n = usbif_front_unconsumed(&G.urb, &hostile);
	if (hostile)
		die("rsp_prod %u is more than 16 ahead of rsp_cons %u (B.9)",
		    G.urb.sring->rsp_prod, G.urb.cons);
	for (uint32_t i = 0; i < n; i++) {
		struct usbif_urb_response r;
		memcpy(&r, usbif_ring_slot(&G.urb, G.urb.cons++), sizeof(r));
		int match = -1;
		unsigned dups = 0;
		for (unsigned k = 0; k < c->nout; k++) {
			if (c->out[k].id != r.id)
				continue;
			if (match < 0)
				match = (int)k;
			dups++;
		}
		if (match < 0)
			die("response id %u (status %d) answers no request in flight (%u in flight)",
			    r.id, r.status, c->nout);
		if (!(c->flags & F_KEEP_IDS) && dups != 1)
			die("distinct ids, yet %u requests in flight with id %u", dups, r.id);
		struct entry *e = &c->out[match];
		if (dups > 1) /* which of them this answers, and which is left, is unknown */
			for (unsigned k = 0; k < c->nout; k++)
				if (c->out[k].id == r.id)
					c->out[k].ambiguous = true;
		if (G.trace)
			fprintf(stderr, "  rsp id %u status %d actual %d start %u errors %d (pipe %#x)\n",
				r.id, r.status, r.actual_length, r.start_frame, r.error_count, e->pipe);
		if (!e->ambiguous)
			check_fields(e, &r);
		for (unsigned u = 0; u < c->nunl; u++) {
			if (c->unl[u].id == r.id && !c->unl[u].answered && e->unlink) {
				c->unl[u].answered = true;
				c->unl[u].status = r.status;
				break;
			}
		}
		c->out[match] = c->out[--c->nout];
		c->answered++;
	}
}

/* Wait until every request sent is answered, or taken with its response
 * legitimately pending. */
static void wait_round(struct ctx *c)
{
	uint64_t deadline = now_ns() + ROUND_DEADLINE_NS;
	struct pvusb_hc_stats st;
	for (;;) {
		consume(c);
		if (c->nout > 0) {
			bool hostile = false;
			if (!usbif_front_final_check(&G.urb, &hostile))
				wait_event(100);
			consume(c);
		}
		stats(&st);
		if (st.broken)
			die("controller broken by a well-behaved frontend: %s", st.broken_reason);
		uint64_t taken = st.requests - G.base_requests;
		uint64_t posted = st.responses - G.base_responses;
		if (c->nout == 0) {
			/* everything answered: the counters agree exactly */
			if (taken != c->sent || posted != c->answered)
				die("all answered, but the controller took %llu/%llu and posted %llu/%llu",
				    (unsigned long long)taken, (unsigned long long)c->sent,
				    (unsigned long long)posted, (unsigned long long)c->answered);
			if (st.maps_live != 0)
				die("all %llu requests answered but %llu grant mappings still live",
				    (unsigned long long)c->sent, (unsigned long long)st.maps_live);
			if (st.inflight != 0)
				die("all requests answered but %u slots in flight", st.inflight);
			return;
		}
		if (taken > c->sent)
			die("the controller took %llu requests, %llu were sent",
			    (unsigned long long)taken, (unsigned long long)c->sent);
		if (taken == c->sent) {
			/* taken; what is left waits in a device (interrupt or bulk IN) */
			consume(c);
			if (G.trace)
				fprintf(stderr, "  round over, %u pending\n", c->nout);
			if (posted > c->answered)
				die("controller posted %llu responses, ring shows %llu",
				    (unsigned long long)posted, (unsigned long long)c->answered);
			if (posted == c->answered && st.inflight != c->nout)
				die("%u requests pending on the ring, controller has %u in flight",
				    c->nout, st.inflight);
			if (posted == c->answered && !(c->flags & F_KEEP_IDS)) {
				/* pending ones hold exactly their own mappings */
				uint64_t maps = 0;
				for (unsigned k = 0; k < c->nout; k++)
					maps += c->out[k].maps;
				if (st.maps_live != maps)
					die("%u requests pending holding %llu grant mappings, %llu live",
					    c->nout, (unsigned long long)maps,
					    (unsigned long long)st.maps_live);
			}
			return;
		}
		if (now_ns() > deadline)
			die("timeout: after %llu s the controller took %llu of %llu requests, %u "
			    "unanswered (lost wake-up?)", DEADLINE_S, (unsigned long long)taken,
			    (unsigned long long)c->sent, c->nout);
	}
}

/* ---- requests ---- */

static void track(struct ctx *c, const struct usbif_urb_request *q)
{
	if (c->nout >= MAX_TRACK)
		die("harness: too many tracked requests");
	struct usbif_pipe p = usbif_pipe_decode(q->pipe);
	struct entry *e = &c->out[c->nout++];
	memset(e, 0, sizeof(*e));
	e->id = q->id;
	e->unlink = p.unlink;
	e->type = p.type;
	e->pipe = q->pipe;
	e->nbuf_ok = q->nr_buffer_segs <= USBIF_MAX_SEGMENTS_PER_REQUEST;
	if (e->nbuf_ok)
		for (unsigned i = 0; i < q->nr_buffer_segs; i++)
			e->data_len += q->seg[i].length;
	e->npackets = q->u.isoc.number_of_packets;
	/* what the core maps for an accepted request (map_data, map_iso) */
	if (e->nbuf_ok && e->data_len > 0)
		e->maps += q->nr_buffer_segs;
	if (p.type == USBIF_PIPE_TYPE_ISOC && e->nbuf_ok &&
	    q->nr_buffer_segs + q->u.isoc.nr_frame_desc_segs <= USBIF_MAX_SEGMENTS_PER_REQUEST)
		e->maps += q->u.isoc.nr_frame_desc_segs;
	e->seq = c->seq;
	e->unlinked_by = -1;
	if (p.type == USBIF_PIPE_TYPE_CTRL && q->u.ctrl[1] == USB_REQ_SET_ADDRESS) {
		c->any_set_address = true;
		c->last_set_address_seq = c->seq;
	}
	c->seq++;
}

/* Write one request into the next free slot; the caller pushes. */
static void put_request(struct ctx *c, struct usbif_urb_request *q)
{
	if (usbif_front_free(&G.urb) == 0 || c->nout >= USB_URB_RING_SIZE)
		die("harness: ring full (%u in flight)", c->nout);
	track(c, q);
	mark_writable(q);
	if (G.trace)
		fprintf(stderr, "  req id %u pipe %#x segs %u len %u setup %02x %02x %04x\n", q->id,
			q->pipe, q->nr_buffer_segs, q->buffer_length, q->u.ctrl[0], q->u.ctrl[1],
			usbif_le16(q->u.ctrl + 2));
	memcpy(usbif_ring_slot(&G.urb, G.urb.prod_pvt++), q, sizeof(*q));
	c->sent++;
}

static void push(struct ctx *c)
{
	if (usbif_front_push_requests(&G.urb) || (c->flags & F_ALWAYS_KICK))
		kick();
}

static void patch(struct ctx *c, struct usbif_urb_request *q)
{
	if (!(c->flags & F_KEEP_IDS))
		q->id = (uint16_t)c->seq;
	for (unsigned i = 0; i < USBIF_MAX_SEGMENTS_PER_REQUEST; i++)
		if (q->seg[i].gref == URB_REF || q->seg[i].gref == CONN_REF)
			q->seg[i].gref += FIRST_DATA_PAGE;
}

static bool id_busy(const struct ctx *c, uint16_t id)
{
	for (unsigned k = 0; k < c->nout; k++)
		if (c->out[k].id == id)
			return true;
	return false;
}

/* Unlink every pending request (B.7), as a frontend tearing down would. */
static void unlink_pending(struct ctx *c)
{
	for (int pass = 0; pass < (int)USB_URB_RING_SIZE && c->nout > 0; pass++) {
		unsigned room = USB_URB_RING_SIZE - c->nout;
		unsigned targets[USB_URB_RING_SIZE], nt = 0;
		for (unsigned k = 0; k < c->nout && nt < room; k++)
			if (!c->out[k].unlink && c->out[k].unlinked_by < 0)
				targets[nt++] = k;
		if (nt == 0)
			return;
		c->nunl = 0;
		/* copies: consume() reorders c->out once responses arrive */
		struct entry tgt[USB_URB_RING_SIZE];
		for (unsigned t = 0; t < nt; t++)
			tgt[t] = c->out[targets[t]];
		for (unsigned t = 0; t < nt; t++) {
			c->out[targets[t]].unlinked_by = (int)t;
			struct usbif_urb_request q;
			memset(&q, 0, sizeof(q));
			q.pipe = (tgt[t].pipe | USBIF_PIPE_UNLINK) & ~USBIF_PIPE_RESERVED_MASK;
			q.u.unlink.unlink_id = tgt[t].id;
			uint16_t id = (uint16_t)c->seq;
			if (c->flags & F_KEEP_IDS)
				for (id = 0xffff; id_busy(c, id); id--)
					;
			q.id = id;
			c->unl[c->nunl++] = (struct cleanup_unlink){
				.id = id, .target_id = tgt[t].id, .target_seq = tgt[t].seq};
			put_request(c, &q);
		}
		push(c);
		wait_round(c);
		for (unsigned t = 0; t < c->nunl; t++) {
			struct cleanup_unlink *u = &c->unl[t];
			if (!u->answered)
				die("unlink id %u (of id %u) not answered though the round is over", u->id,
				    u->target_id);
			/* nothing moved the target's address since it went out: the
			 * unlink finds its device, and cancels it if still pending.
			 * With repeated ids the harness cannot tell which of two
			 * requests a response answered, so it may unlink with the
			 * wrong pipe: only the answer itself is checked then. */
			bool stable = !(c->flags & F_KEEP_IDS) &&
				      (!c->any_set_address || c->last_set_address_seq < u->target_seq);
			if (!stable)
				continue;
			if (u->status != 0)
				die("unlink of id %u answered %d", u->target_id, u->status);
			for (unsigned k = 0; k < c->nout; k++)
				if (c->out[k].seq == u->target_seq)
					die("id %u still pending after its unlink was answered 0",
					    u->target_id);
		}
	}
}

/* Push req_prod more than N ahead of every response (A.6): the controller
 * must give the ring up. */
static void hostile_end(struct ctx *c, uint8_t extra)
{
	uint32_t prod = G.urb.sring->rsp_prod + USB_URB_RING_SIZE + 1 + extra;
	usbif_wmb();
	usbif_idx_store(&G.urb.sring->req_prod, prod);
	kick();
	c->hostile_sent = true;
	uint64_t deadline = now_ns() + ROUND_DEADLINE_NS;
	struct pvusb_hc_stats st;
	for (;;) {
		stats(&st);
		if (st.broken)
			return;
		if (now_ns() > deadline)
			die("req_prod %u, %u past rsp_prod: controller not broken after %llu s", prod,
			    prod - G.urb.sring->rsp_prod, DEADLINE_S);
		wait_event(100);
	}
}

/* The conn ring: only ports 1..3 announced, each with its device's speed. */
static void check_conn(const struct ctx *c)
{
	bool hostile = false;
	uint32_t n = usbif_front_unconsumed(&G.conn, &hostile);
	if (hostile)
		die("conn ring: backend more than 512 ahead");
	for (uint32_t i = 0; i < n; i++) {
		struct usbif_conn_response r;
		memcpy(&r, usbif_ring_slot(&G.conn, G.conn.cons++), sizeof(r));
		if (r.portnum < 1 || r.portnum > NPORTS ||
		    (r.speed != expect_speed[r.portnum] && !(r.speed == 0 && r.portnum == c->unplugged)))
			die("conn event port %u speed %u", r.portnum, r.speed);
	}
}

/* Input on the tablet (port 2): a queued interrupt IN completes here, on the
 * fuzzer's thread, while the controller's thread sleeps or works. */
static void move_tablet(struct ctx *c, unsigned round)
{
	struct pvusb_dev *d = pvusb_hc_port_dev(G.hc, 2);
	if (!d)
		return; /* unplugged */
	if (emul_tablet_input(d, (uint16_t)(round * 977 + 1), (uint16_t)(c->seq * 31), round & 7,
			      (int8_t)(round & 1 ? 1 : -1)) < 0)
		die("emul_tablet_input refused the tablet on port 2");
	consume(c);
}

/* Take the device off a port mid-input (E.6): detach returns once every
 * request in flight on it has been answered. */
static void unplug(struct ctx *c)
{
	unsigned port = c->unplug & U_PORT_MASK;
	if (!port || c->unplugged)
		return;
	int rc = pvusb_hc_detach(G.hc, port);
	if (rc < 0)
		die("pvusb_hc_detach(%u): %d", port, rc);
	c->unplugged = port;
	consume(c);
	struct pvusb_hc_stats st;
	stats(&st);
	if (st.broken)
		die("controller broken by a well-behaved frontend: %s", st.broken_reason);
	uint64_t posted = st.responses - G.base_responses;
	if (posted != c->answered || st.inflight != c->nout)
		die("after detach of port %u: controller posted %llu, ring shows %llu; %u in flight, "
		    "%u pending on the ring", port, (unsigned long long)posted,
		    (unsigned long long)c->answered, st.inflight, c->nout);
	if (c->unplug & U_REPLUG_NOW) {
		plug(port);
		c->replugged = true;
	}
}

static void disconnect_frontend(struct ctx *c)
{
	pvusb_hc_disconnect(G.hc);
	G.connected = false;
	struct pvusb_hc_stats st;
	stats(&st);
	if (st.connected || st.inflight != 0)
		die("after disconnect: connected %d, %u in flight", st.connected, st.inflight);
	/* every request taken was answered (posted unless the ring was given up) */
	if (st.requests - G.base_requests != st.responses - G.base_responses)
		die("after disconnect: %llu requests taken, %llu answered",
		    (unsigned long long)(st.requests - G.base_requests),
		    (unsigned long long)(st.responses - G.base_responses));
	if (c->hostile_sent)
		return; /* responses after the break are counted, not posted */
	consume(c);
	if (c->nout != 0)
		die("disconnect left %u of %llu requests without a response (first id %u pipe %#x)",
		    c->nout, (unsigned long long)c->sent, c->out[0].id, c->out[0].pipe);
	if (st.requests - G.base_requests != c->sent)
		die("after disconnect: %llu taken, %llu sent",
		    (unsigned long long)(st.requests - G.base_requests), (unsigned long long)c->sent);
	check_conn(c);
}

/* ---- stray writes ---- */

/* Bytes of the data pages some request of this input let the backend write:
 * IN buffers and isochronous descriptor segments, marked whatever became of
 * the request. Everything else must still hold what the input started with
 * (OUT buffers are mapped read-only, so a write there is a SIGSEGV anyway). */
static uint8_t wmask[PAGES * USBIF_PAGE_SIZE];
static bool page_w[PAGES];

static void mark_range(const struct usbif_request_segment *sg)
{
	if (sg->gref < FIRST_DATA_PAGE || sg->gref >= PAGES || sg->offset >= USBIF_PAGE_SIZE)
		return;
	uint32_t end = (uint32_t)sg->offset + sg->length;
	if (end > USBIF_PAGE_SIZE)
		end = USBIF_PAGE_SIZE; /* refused anyway; stay conservative */
	memset(wmask + (size_t)sg->gref * USBIF_PAGE_SIZE + sg->offset, 1, end - sg->offset);
	page_w[sg->gref] = true;
}

static void mark_writable(const struct usbif_urb_request *q)
{
	struct usbif_pipe p = usbif_pipe_decode(q->pipe);
	unsigned nbuf = q->nr_buffer_segs, ndesc = 0;
	if (nbuf > USBIF_MAX_SEGMENTS_PER_REQUEST)
		return; /* refused before any mapping */
	if (p.in)
		for (unsigned i = 0; i < nbuf; i++)
			mark_range(&q->seg[i]);
	if (p.type == USBIF_PIPE_TYPE_ISOC) {
		ndesc = q->u.isoc.nr_frame_desc_segs;
		if (nbuf + ndesc <= USBIF_MAX_SEGMENTS_PER_REQUEST)
			for (unsigned i = nbuf; i < nbuf + ndesc; i++)
				mark_range(&q->seg[i]);
	}
}

static void check_stray_writes(const uint8_t *tail, size_t tail_len)
{
	static uint8_t ref[USBIF_PAGE_SIZE];
	memset(ref, 0, sizeof(ref));
	memcpy(ref, tail, tail_len);
	for (unsigned pg = FIRST_DATA_PAGE; pg < PAGES; pg++) {
		const uint8_t *p = G.mem + (size_t)pg * USBIF_PAGE_SIZE;
		if (!page_w[pg]) {
			if (memcmp(p, ref, USBIF_PAGE_SIZE) == 0)
				continue;
		}
		const uint8_t *m = wmask + (size_t)pg * USBIF_PAGE_SIZE;
		for (unsigned b = 0; b < USBIF_PAGE_SIZE; b++)
			if (!m[b] && p[b] != ref[b])
				die("the backend wrote page %u offset %u (%#x, was %#x), which no request "
				    "of this input let it write", pg, b, p[b], ref[b]);
	}
}

/* The same starting point for every input: zeroed storage image, data pages
 * holding zeros and the tail, nothing marked writable. */
static void reset_world(const uint8_t *tail, size_t tail_len)
{
	if (ftruncate(G.image_fd, 0) < 0 || ftruncate(G.image_fd, IMAGE_BYTES) < 0)
		setup_fail("image reset: %s", strerror(errno));
	for (unsigned pg = FIRST_DATA_PAGE; pg < PAGES; pg++) {
		uint8_t *p = G.mem + (size_t)pg * USBIF_PAGE_SIZE;
		if (page_w[pg])
			memset(wmask + (size_t)pg * USBIF_PAGE_SIZE, 0, USBIF_PAGE_SIZE);
		page_w[pg] = false;
		memset(p, 0, USBIF_PAGE_SIZE);
		memcpy(p, tail, tail_len);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!G.ready)
		setup_once();
	static struct ctx c;
	memset(&c, 0, sizeof(c));
	size_t hdr = size < 2 ? size : 2;
	c.flags = size > 0 ? data[0] : 0;
	c.unplug = size > 1 ? data[1] : 0;
	const uint8_t *body = data + hdr;
	size_t body_len = size - hdr;
	size_t nreq = body_len / REQ_BYTES;
	if (nreq > MAX_REQS)
		nreq = MAX_REQS;
	const uint8_t *tail = body + (body_len / REQ_BYTES) * REQ_BYTES;
	size_t tail_len = body_len % REQ_BYTES;

	/* between inputs nothing is in flight: the backend touches no page */
	reset_world(tail, tail_len);

	unsigned per_round = ((c.flags >> 4) & 15u) + 1;
	unsigned unplug_after = (c.unplug >> U_ROUND_SHIFT) & U_ROUND_MASK, round = 0;
	size_t i = 0;
	while (i < nreq) {
		unsigned room = USB_URB_RING_SIZE - c.nout;
		if (room == 0)
			break; /* 16 pending: nothing more fits until they are unlinked */
		size_t k = per_round < room ? per_round : room;
		if (k > nreq - i)
			k = nreq - i;
		for (size_t j = 0; j < k; j++, i++) {
			struct usbif_urb_request q;
			memcpy(&q, body + i * REQ_BYTES, sizeof(q));
			patch(&c, &q);
			put_request(&c, &q);
		}
		push(&c);
		wait_round(&c);
		if (c.unplug & U_INPUT)
			move_tablet(&c, round);
		if (round++ == unplug_after)
			unplug(&c);
	}
	unplug(&c); /* no-op when done already or not asked for */
	if ((c.flags & F_UNLINK) && c.nout > 0)
		unlink_pending(&c);
	if (c.flags & F_HOSTILE)
		hostile_end(&c, tail_len ? tail[0] : 0);
	disconnect_frontend(&c);
	if (c.unplugged && !c.replugged)
		plug(c.unplugged); /* every input starts with all three devices */
	check_stray_writes(tail, tail_len);
	connect_frontend(); /* fresh rings for the next input */
	return 0;
}
