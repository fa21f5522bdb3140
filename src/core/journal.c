/* SPDX-License-Identifier: MIT */
/* The ring journal (journal.h): the record's layout, its store orders, and
 * the takeover that repairs a record a crash interrupted. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "pvusb/request.h"
#include "pvusb/ring.h"
#include "util/log.h"

#define N USB_URB_RING_SIZE
#define E_FREE PVUSB_JE_FREE
#define E_TAKEN PVUSB_JE_TAKEN
#define E_ANSWERED PVUSB_JE_ANSWERED
#define E_TAKING PVUSB_JE_TAKING

_Static_assert(PVUSB_JOURNAL_SLOTS == USB_URB_RING_SIZE, "one entry per core slot");
_Static_assert(sizeof(struct pvusb_ring_record) <= PVUSB_JOURNAL_BYTES, "the record fits its page");
_Static_assert(sizeof(struct pvusb_journal_ident) == 20, "five words of identity");
_Static_assert(offsetof(struct pvusb_ring_record, pos) == 40, "no hidden padding before pos");
_Static_assert(PVUSB_JOURNAL_TAG_OFFSET == offsetof(struct usbif_ring_hdr, pad) + 36 &&
		       PVUSB_JOURNAL_TAG_OFFSET + 8 == sizeof(struct usbif_ring_hdr),
	       "the tag is the last 8 bytes of the header's padding");

static uint64_t *ring_tag(void *urb_ring)
{
	return (uint64_t *)((uint8_t *)urb_ring + PVUSB_JOURNAL_TAG_OFFSET);
}

/* Random, never 0 (a fresh ring's padding is zero). */
static uint64_t new_tag(void)
{
	uint64_t t = 0;
	if (getrandom(&t, sizeof(t), GRND_NONBLOCK) != (ssize_t)sizeof(t)) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		t = ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 40);
	}
	return t ? t : 1;
}

struct pvusb_ring_journal {
	struct pvusb_ring_record *rec; /* the mapped page */
	char path[256];
	bool warned;
};

#ifdef PVUSB_JOURNAL_TEST
void (*pvusb_journal_test_step)(void);
struct pvusb_ring_record *pvusb_journal_test_record(struct pvusb_ring_journal *j) { return j->rec; }
#define STEP()                                                                                     \
	do {                                                                                       \
		if (pvusb_journal_test_step)                                                       \
			pvusb_journal_test_step();                                                 \
	} while (0)
#else
#define STEP() do {} while (0)
#endif

static uint64_t entry_make(unsigned state, uint16_t id, uint32_t idx)
{
	return (uint64_t)idx << 32 | (uint64_t)state << 16 | id;
}

static void entry_store(struct pvusb_ring_journal *j, unsigned slot, uint64_t e)
{
	/* release: the ring and record stores before it are in memory first */
	__atomic_store_n(&j->rec->entry[slot], e, __ATOMIC_RELEASE);
	STEP();
}

/* Q += dq and C += dc together, each modulo 2^32 (a plain 64-bit add would
 * carry C's wrap into Q). Uncontended in practice: C moves on the service
 * thread, Q under rsp_lock. */
static void pos_add(struct pvusb_ring_journal *j, uint32_t dq, uint32_t dc)
{
	uint64_t old = __atomic_load_n(&j->rec->pos, __ATOMIC_RELAXED), nw;
	do {
		uint32_t q = (uint32_t)(old >> 32) + dq, c = (uint32_t)old + dc;
		nw = (uint64_t)q << 32 | c;
	} while (!__atomic_compare_exchange_n(&j->rec->pos, &old, nw, true, __ATOMIC_ACQ_REL,
					      __ATOMIC_RELAXED));
	STEP();
}

static void pos_get(const struct pvusb_ring_journal *j, uint32_t *q, uint32_t *c)
{
	uint64_t p = __atomic_load_n(&j->rec->pos, __ATOMIC_ACQUIRE);
	*q = (uint32_t)(p >> 32);
	*c = (uint32_t)p;
}

void pvusb_journal_positions(const struct pvusb_ring_journal *j, uint32_t *rsp, uint32_t *req)
{
	pos_get(j, rsp, req);
}

void pvusb_journal_set_broken(struct pvusb_ring_journal *j)
{
	__atomic_or_fetch(&j->rec->flags, PVUSB_JOURNAL_BROKEN, __ATOMIC_RELEASE);
}

/* An index the record does not expect: the core and the record disagree,
 * so the record can no longer be trusted by a takeover. */
static void mismatch(struct pvusb_ring_journal *j, const char *what, uint32_t got, uint32_t want)
{
	pvusb_journal_set_broken(j);
	if (!j->warned)
		log_err("ring journal %s: %s index %u, the record says %u; record marked broken "
			"(a restart will not resume these rings)", j->path, what, got, want);
	j->warned = true;
}

/* ---- the hot path ---- */

void pvusb_journal_take(struct pvusb_ring_journal *j, unsigned slot, uint16_t id, uint32_t req_idx)
{
	uint32_t q, c;
	pos_get(j, &q, &c);
	if (req_idx != c)
		mismatch(j, "request", req_idx, c);
	entry_store(j, slot, entry_make(E_TAKING, id, req_idx));
	pos_add(j, 0, 1);
	entry_store(j, slot, entry_make(E_TAKEN, id, req_idx));
}

void pvusb_journal_answered(struct pvusb_ring_journal *j, unsigned slot, uint32_t rsp_idx)
{
	uint32_t q, c;
	pos_get(j, &q, &c);
	if (rsp_idx != q)
		mismatch(j, "response", rsp_idx, q);
	uint64_t e = __atomic_load_n(&j->rec->entry[slot], __ATOMIC_RELAXED);
	entry_store(j, slot, entry_make(E_ANSWERED, (uint16_t)e, rsp_idx));
	pos_add(j, 1, 0);
	entry_store(j, slot, entry_make(E_FREE, 0, 0));
}

void pvusb_journal_answer_now(struct pvusb_ring_journal *j, uint32_t req_idx, uint32_t rsp_idx)
{
	uint32_t q, c;
	pos_get(j, &q, &c);
	if (req_idx != c || rsp_idx != q)
		mismatch(j, req_idx != c ? "request" : "response", req_idx != c ? req_idx : rsp_idx,
			 req_idx != c ? c : q);
	pos_add(j, 1, 1);
}

/* ---- the file ---- */

static int fail(char *err, size_t errlen, int rc, const char *fmt, const char *path)
{
	snprintf(err, errlen, fmt, path, strerror(-rc));
	return rc;
}

static int make_parent(const char *path, char *err, size_t errlen)
{
	char dir[256];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = 0;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return fail(err, errlen, -errno, "cannot create the directory of %s: %s", path);
	return 0;
}

static int map_record(int fd, const char *path, struct pvusb_ring_journal **out)
{
	void *p = mmap(NULL, PVUSB_JOURNAL_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	struct pvusb_ring_journal *j = calloc(1, sizeof(*j));
	if (!j) {
		munmap(p, PVUSB_JOURNAL_BYTES);
		return -ENOMEM;
	}
	j->rec = p;
	snprintf(j->path, sizeof(j->path), "%s", path);
	*out = j;
	return 0;
}

int pvusb_journal_create(const char *path, const struct pvusb_journal_ident *id, void *urb_ring,
			 struct pvusb_ring_journal **out, char *err, size_t errlen)
{
	if (strlen(path) >= sizeof((*out)->path))
		return fail(err, errlen, -ENAMETOOLONG, "%s: %s", path);
	int rc = make_parent(path, err, errlen);
	if (rc < 0)
		return rc;
	if (unlink(path) < 0 && errno != ENOENT)
		return fail(err, errlen, -errno, "cannot replace %s: %s", path);
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail(err, errlen, -errno, "cannot create %s: %s", path);
	/* the page exists from now on: no SIGBUS on a full /run later */
	rc = posix_fallocate(fd, 0, PVUSB_JOURNAL_BYTES);
	if (rc == 0)
		rc = map_record(fd, path, out);
	else
		rc = -rc;
	close(fd);
	if (rc < 0) {
		unlink(path);
		return fail(err, errlen, rc, "cannot set up %s: %s", path);
	}
	struct pvusb_ring_record *r = (*out)->rec;
	uint32_t start = usbif_idx_load(&((struct usbif_ring_hdr *)urb_ring)->rsp_prod);
	memset(r, 0, PVUSB_JOURNAL_BYTES);
	r->version = PVUSB_JOURNAL_VERSION;
	r->nr_slots = N;
	r->id = *id;
	r->pos = (uint64_t)start << 32 | start;
	r->ring_tag = new_tag();
	__atomic_store_n(ring_tag(urb_ring), r->ring_tag, __ATOMIC_RELAXED);
	__atomic_store_n(&r->magic, PVUSB_JOURNAL_MAGIC, __ATOMIC_RELEASE); /* last: complete now */
	return 0;
}

int pvusb_journal_open(const char *path, const struct pvusb_journal_ident *id,
		       struct pvusb_ring_journal **out, char *err, size_t errlen)
{
	int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return fail(err, errlen, -errno, "%s: %s", path);
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st) < 0)
		rc = -errno;
	else if (!S_ISREG(st.st_mode) || st.st_size != PVUSB_JOURNAL_BYTES)
		rc = -EPROTO;
	else
		rc = map_record(fd, path, out);
	close(fd);
	if (rc < 0)
		return fail(err, errlen, rc, rc == -EPROTO ? "%s: not a ring record (%s)" : "cannot open %s: %s",
			    path);
	const struct pvusb_ring_record *r = (*out)->rec;
	if (__atomic_load_n(&r->magic, __ATOMIC_ACQUIRE) != PVUSB_JOURNAL_MAGIC || r->version != PVUSB_JOURNAL_VERSION ||
	    r->nr_slots != N)
		rc = fail(err, errlen, -EPROTO, "%s: not a complete ring record of this version (%s)", path);
	else if (memcmp(&r->id, id, sizeof(*id)))
		rc = fail(err, errlen, -ESTALE, "%s: a record of other rings (%s)", path);
	if (rc < 0) {
		pvusb_journal_close(*out, false);
		*out = NULL;
	}
	return rc;
}

void pvusb_journal_close(struct pvusb_ring_journal *j, bool remove)
{
	if (!j)
		return;
	munmap(j->rec, PVUSB_JOURNAL_BYTES);
	if (remove)
		unlink(j->path);
	free(j);
}

/* ---- the takeover ---- */

static int bad(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EPROTO;
}

int pvusb_journal_takeover(struct pvusb_ring_journal *j, void *urb_ring,
			   struct pvusb_journal_result *res, char *err, size_t errlen)
{
	struct pvusb_ring_record *r = j->rec;
	memset(res, 0, sizeof(*res));
	if (__atomic_load_n(ring_tag(urb_ring), __ATOMIC_RELAXED) != r->ring_tag) {
		snprintf(err, errlen, "the frontend set its rings up afresh since (no tag)");
		return -ESTALE;
	}
	if (__atomic_load_n(&r->flags, __ATOMIC_ACQUIRE) & PVUSB_JOURNAL_BROKEN)
		return bad(err, errlen, "the rings were abandoned as broken");
	uint32_t q, c;
	pos_get(j, &q, &c);
	if ((uint32_t)(c - q) > N)
		return bad(err, errlen, "record: %u requests unanswered (at most %u)", c - q, (unsigned)N);

	/* Read every entry once and decide; nothing is written before all of
	 * it (and the ring's indexes) passed. */
	uint64_t e[N];
	int in_flight[N], nflight = 0, drop[N], ndrop = 0, done = -1, retake = -1;
	for (unsigned i = 0; i < N; i++) {
		e[i] = __atomic_load_n(&r->entry[i], __ATOMIC_ACQUIRE);
		unsigned state = (unsigned)(e[i] >> 16) & 0xffffu;
		uint32_t idx = (uint32_t)(e[i] >> 32);
		if (state == E_FREE) {
			if (e[i])
				return bad(err, errlen, "record: slot %u free but not zero", i);
		} else if (state == E_TAKING && idx == c) {
			/* taken, not yet counted: request c is taken again */
			if (retake >= 0)
				return bad(err, errlen, "record: slots %d and %u both at the next request",
					   retake, i);
			retake = (int)i;
			drop[ndrop++] = (int)i;
		} else if (state == E_TAKEN || (state == E_TAKING && idx == c - 1)) {
			in_flight[nflight++] = (int)i; /* a TAKEN request may be any age */
		} else if (state == E_ANSWERED && idx == q) {
			/* its response is complete in the ring; Q not yet moved */
			if (done >= 0)
				return bad(err, errlen, "record: slots %d and %u both answered at Q", done, i);
			done = (int)i;
		} else if (state == E_ANSWERED && idx == q - 1) {
			drop[ndrop++] = (int)i; /* counted; just not freed */
		} else {
			return bad(err, errlen, "record: slot %u in state %u at ring index %u (Q %u, C %u)",
				   i, state, idx, q, c);
		}
	}
	uint32_t qf = q + (done >= 0);
	if (done >= 0 && q == c)
		return bad(err, errlen, "record: a response at Q %u with nothing unanswered", q);
	if ((uint32_t)nflight != c - qf)
		return bad(err, errlen, "record: %d requests in flight, positions say %u", nflight, c - qf);
	for (int a = 0; a < nflight; a++)
		for (int b = a + 1; b < nflight; b++)
			if ((uint16_t)e[in_flight[a]] == (uint16_t)e[in_flight[b]])
				return bad(err, errlen, "record: id %u in flight twice",
					   (unsigned)(uint16_t)e[in_flight[a]]);

	struct usbif_ring ring;
	usbif_urb_back_attach(&ring, urb_ring);
	uint32_t req_prod = usbif_idx_load(&ring.sring->req_prod);
	uint32_t rsp_prod = usbif_idx_load(&ring.sring->rsp_prod);
	usbif_rmb();
	if ((uint32_t)(qf - rsp_prod) > N)
		return bad(err, errlen, "urb ring: rsp_prod %u is not within 16 below the %u responses written",
			   rsp_prod, qf);
	if ((uint32_t)(req_prod - c) > (uint32_t)(qf + N - c))
		return bad(err, errlen, "urb ring: req_prod %u is not between the %u requests taken and 16 "
			   "past the responses", req_prod, c);

	/* Repair, in an order a crash here also leaves repairable. */
	if (done >= 0) {
		pos_add(j, 1, 0);
		entry_store(j, (unsigned)done, entry_make(E_FREE, 0, 0));
		res->completed = 1;
	}
	for (int k = 0; k < ndrop; k++)
		entry_store(j, (unsigned)drop[k], entry_make(E_FREE, 0, 0));
	/* oldest request first, as a frontend would expect them */
	for (int a = 1; a < nflight; a++)
		for (int b = a; b > 0 && (uint32_t)(c - 1 - (uint32_t)(e[in_flight[b]] >> 32)) >
					    (uint32_t)(c - 1 - (uint32_t)(e[in_flight[b - 1]] >> 32)); b--) {
			int t = in_flight[b];
			in_flight[b] = in_flight[b - 1];
			in_flight[b - 1] = t;
		}
	uint32_t at = qf;
	for (int k = 0; k < nflight; k++, at++) {
		struct usbif_urb_response *rsp = usbif_ring_slot(&ring, at);
		usbif_rsp_fill(rsp, (uint16_t)e[in_flight[k]], USBIF_STATUS_SHUTDOWN, 0, 0, 0);
		STEP();
		pvusb_journal_answered(j, (unsigned)in_flight[k], at);
	}
	res->answered = (unsigned)nflight;
	ring.prod_pvt = at;
	res->published = at - rsp_prod;
	if (at != rsp_prod)
		res->notify = usbif_back_push_responses(&ring);
	STEP();
	return 0;
}
