/* SPDX-License-Identifier: MIT */
/*
 * The ring journal and the takeover (src/core/journal.c) without Xen.
 *
 * A simulated frontend (ids from a free list, as xen-hcd) and a simulated
 * backend that stores in the core's order (src/core/urb.c: response content,
 * then the journal; slots taken, answered at once, completed out of order,
 * published in batches) share one ring page. journal.c is built here with
 * PVUSB_JOURNAL_TEST, which calls a hook between every two stores to the
 * record or the ring; the backend model calls it between its own. At each
 * such point the test "kills" the backend: it copies the ring page, the
 * record page and the frontend's state, takes the copy over as a restarted
 * pvusbd would (record written to a file, opened, taken over), lets the new
 * backend answer what is left, and checks that every request the frontend
 * ever posted got exactly one response and that none got two. A crash during
 * that takeover, or of the new backend, is itself taken over the same way
 * (one level deeper). Then hostile records and rings: each is refused with
 * nothing written, and random garbage never crashes or loops.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/journal.h"
#include "pvusb/request.h"
#include "pvusb/ring.h"

#include "check.h"

#define N USB_URB_RING_SIZE
#define PAGE 4096
#define LEVELS 3 /* the run, a takeover of it, a takeover of that */

static char dir[64];
static const struct pvusb_journal_ident ID = {.domid = 7, .devid = 1, .urb_ref = 8, .conn_ref = 9, .evtchn = 10};

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static unsigned rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

/* ---- the frontend ---- */

struct fe {
	struct usbif_ring r;
	bool out[N];     /* id outstanding */
	uint32_t tag[N]; /* which request it is (echoed by the backend) */
	uint32_t next_tag;
	uint64_t posted, answered;
};

static unsigned violations;
static char first_violation[200];

static void violation(const char *what, unsigned id, int level)
{
	if (!violations++)
		snprintf(first_violation, sizeof(first_violation), "%s (id %u, level %d)", what, id, level);
}

static void fe_attach(struct fe *f, void *page)
{
	f->r.sring = page;
	f->r.slots = (uint8_t *)page + USBIF_RING_HDR_BYTES;
}

static void fe_post(struct fe *f, unsigned max)
{
	for (unsigned n = 0; n < max && usbif_front_free(&f->r) > 0; n++) {
		unsigned id = rnd(N);
		while (f->out[id])
			id = (id + 1) % N; /* some id is free: at most N outstanding */
		struct usbif_urb_request *q = usbif_ring_slot(&f->r, f->r.prod_pvt++);
		memset(q, 0, sizeof(*q));
		q->id = (uint16_t)id;
		q->seg[0].gref = ++f->next_tag; /* past the 16 bytes a response overwrites */
		f->out[id] = true;
		f->tag[id] = f->next_tag;
		f->posted++;
	}
	usbif_front_push_requests(&f->r);
}

static void fe_consume(struct fe *f, int level)
{
	bool hostile = false;
	uint32_t n = usbif_front_unconsumed(&f->r, &hostile);
	if (hostile)
		violation("rsp_prod more than N ahead", 0, level);
	for (uint32_t i = 0; i < n; i++) {
		const struct usbif_urb_response *rsp = usbif_ring_slot(&f->r, f->r.cons++);
		unsigned id = rsp->id;
		if (id >= N || !f->out[id]) {
			violation("a response for an id not outstanding (answered twice?)", id, level);
			continue;
		}
		if (rsp->status == 0 && (uint32_t)rsp->actual_length != f->tag[id])
			violation("a response for another request of that id", id, level);
		if (rsp->status != 0 && rsp->status != USBIF_STATUS_SHUTDOWN)
			violation("a status the backend never sends", id, level);
		f->out[id] = false;
		f->answered++;
	}
}

/* ---- crash points ---- */

struct ctx {
	uint8_t *ring;
	struct pvusb_ring_journal *j;
	struct fe *fe;
};
static struct ctx stack[LEVELS];
static int depth; /* contexts in use; crash points act for the top one */
static uint64_t crashes[LEVELS];

static void recover(int level, const uint8_t *ring, const void *rec, const struct fe *fe);

static void crash_point(void)
{
	if (depth == 0 || depth >= LEVELS)
		return;
	struct ctx *c = &stack[depth - 1];
	static uint8_t ring[LEVELS][PAGE], rec[LEVELS][PAGE];
	static struct fe fe[LEVELS];
	int l = depth;
	memcpy(ring[l], c->ring, PAGE);
	memcpy(rec[l], pvusb_journal_test_record(c->j), PAGE);
	fe[l] = *c->fe;
	crashes[l]++;
	recover(l, ring[l], rec[l], &fe[l]);
}

/* ---- the backend, in the core's store order ---- */

struct be {
	struct usbif_ring r;
	struct pvusb_ring_journal *j;
	bool busy[N];
	uint16_t id[N];
	uint32_t tag[N];
};

static void be_write(struct be *b, uint16_t id, uint32_t tag)
{
	usbif_rsp_fill(usbif_ring_slot(&b->r, b->r.prod_pvt), id, 0, (int32_t)tag, 0, 0);
	crash_point(); /* the response is in the ring; nothing says so yet */
}

/* Take request cons: into a slot, or answered at once (refused, unlink). */
static void be_take(struct be *b, bool now)
{
	const struct usbif_urb_request *q = usbif_ring_slot(&b->r, b->r.cons);
	uint16_t id = q->id;
	uint32_t tag = q->seg[0].gref;
	b->r.cons++;
	crash_point(); /* copied, not accounted */
	unsigned s = 0;
	while (s < N && b->busy[s])
		s++;
	if (now || s == N) {
		be_write(b, id, tag);
		pvusb_journal_answer_now(b->j, b->r.cons - 1, b->r.prod_pvt);
		b->r.prod_pvt++;
		return;
	}
	pvusb_journal_take(b->j, s, id, b->r.cons - 1);
	b->busy[s] = true;
	b->id[s] = id;
	b->tag[s] = tag;
}

static void be_complete(struct be *b, unsigned s)
{
	be_write(b, b->id[s], b->tag[s]);
	pvusb_journal_answered(b->j, s, b->r.prod_pvt);
	b->r.prod_pvt++;
	b->busy[s] = false;
}

static void be_publish(struct be *b)
{
	usbif_back_push_responses(&b->r);
	crash_point();
}

/* Answer everything there is, at once. */
static void be_drain(struct be *b)
{
	bool hostile = false;
	uint32_t n;
	while ((n = usbif_back_unconsumed(&b->r, &hostile)) > 0)
		while (n--)
			be_take(b, true);
	be_publish(b);
}

/* ---- taking a crashed backend over ---- */

static bool fe_clean(const struct fe *f)
{
	for (unsigned i = 0; i < N; i++)
		if (f->out[i])
			return false;
	return f->answered == f->posted;
}

static void recover(int level, const uint8_t *ring_snap, const void *rec_snap, const struct fe *fe_snap)
{
	static uint8_t ring[LEVELS][PAGE] __attribute__((aligned(64)));
	char path[96], err[200];
	memcpy(ring[level], ring_snap, PAGE);
	snprintf(path, sizeof(path), "%s/rec-%d", dir, level);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	bool wrote = fd >= 0 && write(fd, rec_snap, PAGE) == PAGE;
	if (fd >= 0)
		close(fd);
	struct pvusb_ring_journal *j = NULL;
	if (!wrote || pvusb_journal_open(path, &ID, &j, err, sizeof(err)) < 0) {
		violation("the record did not open", 0, level);
		return;
	}
	struct fe f = *fe_snap;
	fe_attach(&f, ring[level]);
	stack[depth++] = (struct ctx){.ring = ring[level], .j = j, .fe = &f};

	struct pvusb_journal_result res;
	int rc = pvusb_journal_takeover(j, ring[level], &res, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "takeover refused at level %d: %s\n", level, err);
		violation("a consistent record refused", 0, level);
		depth--;
		pvusb_journal_close(j, true);
		return;
	}
	uint32_t q, c;
	pvusb_journal_positions(j, &q, &c);
	if (q != c || usbif_idx_load(&f.r.sring->rsp_prod) != q)
		violation("after the takeover Q != C or rsp_prod != Q", 0, level);
	struct be b = {.j = j};
	usbif_urb_back_attach(&b.r, ring[level]);
	b.r.prod_pvt = q;
	b.r.cons = c;
	be_drain(&b);
	fe_consume(&f, level);
	if (!fe_clean(&f))
		violation("a request never answered", 0, level);
	/* and the rings carry on */
	fe_post(&f, 1 + rnd(N));
	be_drain(&b);
	fe_consume(&f, level);
	if (!fe_clean(&f))
		violation("a request after the takeover never answered", 0, level);
	depth--;
	pvusb_journal_close(j, true);
}

/* ---- the run: random traffic with a crash taken over at every point ---- */

static void run(uint32_t start, unsigned steps, uint64_t seed)
{
	static uint8_t page[PAGE] __attribute__((aligned(64)));
	char path[96], err[200];
	rng = seed;
	struct fe f = {0};
	usbif_urb_front_init(&f.r, page);
	f.r.prod_pvt = f.r.cons = start;
	f.r.sring->req_prod = f.r.sring->rsp_prod = start;
	f.r.sring->req_event = f.r.sring->rsp_event = start + 1;
	struct be b = {0};
	usbif_urb_back_attach(&b.r, page);
	b.r.prod_pvt = b.r.cons = start;
	snprintf(path, sizeof(path), "%s/run", dir);
	int rc = pvusb_journal_create(path, &ID, page, &b.j, err, sizeof(err));
	CHECK(rc == 0, "journal created");
	if (rc < 0) {
		fprintf(stderr, "%s\n", err);
		return;
	}
	stack[depth++] = (struct ctx){.ring = page, .j = b.j, .fe = &f};
	for (unsigned i = 0; i < steps; i++) {
		bool hostile = false;
		unsigned busy = 0;
		for (unsigned s = 0; s < N; s++)
			busy += b.busy[s];
		switch (rnd(6)) {
		case 0:
			fe_post(&f, 1 + rnd(6));
			break;
		case 1:
		case 2:
			if (usbif_back_unconsumed(&b.r, &hostile) > 0)
				be_take(&b, rnd(3) == 0);
			break;
		case 3:
			if (busy) {
				unsigned s = rnd(N);
				while (!b.busy[s])
					s = (s + 1) % N;
				be_complete(&b, s);
			}
			break;
		case 4:
			be_publish(&b);
			break;
		case 5:
			fe_consume(&f, 0);
			break;
		}
		if (hostile)
			violation("the frontend model overran the ring", 0, 0);
	}
	depth--;
	/* the run itself, finished without a crash, answered everything too */
	while (1) {
		unsigned s = 0;
		while (s < N && !b.busy[s])
			s++;
		if (s == N)
			break;
		be_complete(&b, s);
	}
	be_drain(&b);
	fe_consume(&f, 0);
	CHECK(fe_clean(&f), "the run without a crash answered every request once");
	CHECK(f.posted > steps / 8, "the run moved requests");
	pvusb_journal_close(b.j, true);
}

static void test_crash_everywhere(void)
{
	pvusb_journal_test_step = crash_point;
	struct {
		uint32_t start;
		unsigned steps;
		uint64_t seed;
	} runs[] = {
		{0, 600, 1}, {0, 600, 2}, {0xffffffc0u, 600, 3}, {12345, 400, 4},
	};
	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		uint64_t before = violations;
		run(runs[i].start, runs[i].steps, runs[i].seed);
		CHECK(violations == before, "every crash point taken over: each request answered exactly once");
	}
	pvusb_journal_test_step = NULL;
	if (violations)
		fprintf(stderr, "first violation: %s\n", first_violation);
	fprintf(stderr, "crash points taken over: %llu in runs, %llu during takeovers\n",
		(unsigned long long)crashes[1], (unsigned long long)crashes[2]);
	CHECK(crashes[1] > 1000 && crashes[2] > 10000, "many crash points at both levels");
}

/* ---- hostile records and rings ---- */

static uint8_t hring[PAGE] __attribute__((aligned(64)));

/* A record with `inflight` requests in flight (ids 0..), Q and C around
 * `base`, on a ring whose rsp_prod is Q and req_prod is C + `extra`. */
static struct pvusb_ring_journal *setup(const char *name, uint32_t base, unsigned inflight, unsigned extra)
{
	char path[96], err[200];
	struct pvusb_ring_journal *j;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	struct usbif_ring fr;
	usbif_urb_front_init(&fr, hring);
	fr.sring->rsp_prod = base;
	if (pvusb_journal_create(path, &ID, hring, &j, err, sizeof(err)) < 0)
		return NULL;
	struct pvusb_ring_record *r = pvusb_journal_test_record(j);
	for (unsigned i = 0; i < inflight; i++)
		r->entry[i] = (uint64_t)(base + i) << 32 | (uint64_t)PVUSB_JE_TAKEN << 16 | i;
	uint32_t c = base + inflight;
	r->pos = (uint64_t)base << 32 | c;
	fr.sring->req_prod = c + extra;
	return j;
}

/* The takeover refuses, and writes neither the record nor the ring. */
static void expect_refused(struct pvusb_ring_journal *j, const char *what)
{
	static uint8_t rec0[PAGE], ring0[PAGE];
	char err[200] = "";
	struct pvusb_journal_result res;
	memcpy(rec0, pvusb_journal_test_record(j), PAGE);
	memcpy(ring0, hring, PAGE);
	int rc = pvusb_journal_takeover(j, hring, &res, err, sizeof(err));
	bool same = !memcmp(rec0, pvusb_journal_test_record(j), PAGE) && !memcmp(ring0, hring, PAGE);
	if (rc != -EPROTO || !same)
		fprintf(stderr, "%s: rc %d, %s, err '%s'\n", what, rc, same ? "unchanged" : "CHANGED", err);
	CHECK(rc == -EPROTO && same && err[0], what);
	pvusb_journal_close(j, true);
}

static void test_hostile(void)
{
	struct pvusb_ring_journal *j;
	/* the baseline is accepted */
	j = setup("ok", 100, 3, 2);
	struct pvusb_journal_result res;
	char err[200];
	CHECK(j && pvusb_journal_takeover(j, hring, &res, err, sizeof(err)) == 0 && res.answered == 3 &&
	      res.published == 3, "baseline: three in flight answered");
	struct usbif_ring br;
	usbif_urb_back_attach(&br, hring);
	const struct usbif_urb_response *rsp = usbif_ring_slot(&br, 100);
	CHECK(rsp->id == 0 && rsp->status == USBIF_STATUS_SHUTDOWN, "oldest first, -ESHUTDOWN");
	pvusb_journal_close(j, true);

	j = setup("broken", 100, 3, 0);
	pvusb_journal_set_broken(j);
	expect_refused(j, "a record marked broken");
	j = setup("window", 100, 0, 0);
	pvusb_journal_test_record(j)->pos = (uint64_t)100 << 32 | 117;
	expect_refused(j, "17 requests unanswered");
	j = setup("q-ahead", 100, 0, 0);
	pvusb_journal_test_record(j)->pos = (uint64_t)101 << 32 | 100;
	expect_refused(j, "Q ahead of C");
	j = setup("state", 100, 2, 0);
	pvusb_journal_test_record(j)->entry[1] |= 7ull << 16;
	expect_refused(j, "an entry in no known state");
	j = setup("high-bits", 100, 2, 0);
	pvusb_journal_test_record(j)->entry[1] |= 1ull << 24;
	expect_refused(j, "an entry with reserved bits set");
	j = setup("free-dirty", 100, 2, 0);
	pvusb_journal_test_record(j)->entry[5] = 0x1234;
	expect_refused(j, "a free entry that is not zero");
	j = setup("dup", 100, 3, 0);
	pvusb_journal_test_record(j)->entry[2] = (uint64_t)102 << 32 | (uint64_t)PVUSB_JE_TAKEN << 16 | 1;
	expect_refused(j, "an id in flight twice");
	j = setup("count", 100, 3, 0);
	pvusb_journal_test_record(j)->entry[2] = 0;
	expect_refused(j, "fewer in flight than the positions say");
	j = setup("far-taking", 100, 3, 0);
	pvusb_journal_test_record(j)->entry[2] = (uint64_t)40 << 32 | (uint64_t)PVUSB_JE_TAKING << 16 | 2;
	expect_refused(j, "a slot being taken at neither C nor C - 1");
	j = setup("far-answered", 100, 3, 0);
	pvusb_journal_test_record(j)->entry[7] = (uint64_t)90 << 32 | (uint64_t)PVUSB_JE_ANSWERED << 16 | 7;
	expect_refused(j, "a slot being answered at neither Q nor Q - 1");
	j = setup("two-next", 100, 1, 0);
	pvusb_journal_test_record(j)->entry[5] = (uint64_t)101 << 32 | (uint64_t)PVUSB_JE_TAKEN << 16 | 5;
	pvusb_journal_test_record(j)->entry[6] = (uint64_t)101 << 32 | (uint64_t)PVUSB_JE_TAKEN << 16 | 6;
	expect_refused(j, "two slots taking the next request");
	j = setup("two-at-q", 100, 3, 0);
	pvusb_journal_test_record(j)->entry[0] = (uint64_t)100 << 32 | (uint64_t)PVUSB_JE_ANSWERED << 16 | 0;
	pvusb_journal_test_record(j)->entry[1] = (uint64_t)100 << 32 | (uint64_t)PVUSB_JE_ANSWERED << 16 | 1;
	expect_refused(j, "two responses at Q");
	j = setup("q-eq-c", 100, 0, 0);
	pvusb_journal_test_record(j)->entry[0] = (uint64_t)100 << 32 | (uint64_t)PVUSB_JE_ANSWERED << 16 | 0;
	expect_refused(j, "a response at Q with nothing unanswered");
	j = setup("rsp-ahead", 100, 3, 0);
	((struct usbif_ring_hdr *)hring)->rsp_prod = 101;
	expect_refused(j, "rsp_prod past the responses written");
	j = setup("rsp-behind", 100, 3, 0);
	((struct usbif_ring_hdr *)hring)->rsp_prod = 83;
	expect_refused(j, "rsp_prod more than N behind");
	j = setup("req-behind", 100, 3, 0);
	((struct usbif_ring_hdr *)hring)->req_prod = 102;
	expect_refused(j, "req_prod behind the requests taken");
	j = setup("req-ahead", 100, 3, 0);
	((struct usbif_ring_hdr *)hring)->req_prod = 117;
	expect_refused(j, "req_prod more than N past the responses");
	/* the windows: what the store orders can leave behind is accepted */
	j = setup("old", 100, 3, 0);
	pvusb_journal_test_record(j)->entry[0] = (uint64_t)(100 - 100000) << 32 | (uint64_t)PVUSB_JE_TAKEN << 16 | 0;
	CHECK(j && pvusb_journal_takeover(j, hring, &res, err, sizeof(err)) == 0 && res.answered == 3,
	      "a request in flight for 100000 requests is answered");
	pvusb_journal_close(j, true);
	j = setup("taking-counted", 100, 3, 0);
	pvusb_journal_test_record(j)->entry[2] = (uint64_t)102 << 32 | (uint64_t)PVUSB_JE_TAKING << 16 | 2;
	CHECK(j && pvusb_journal_takeover(j, hring, &res, err, sizeof(err)) == 0 && res.answered == 3,
	      "TAKING at C - 1 is in flight");
	pvusb_journal_close(j, true);
	j = setup("taking-uncounted", 100, 3, 1);
	pvusb_journal_test_record(j)->entry[9] = (uint64_t)103 << 32 | (uint64_t)PVUSB_JE_TAKING << 16 | 9;
	CHECK(j && pvusb_journal_takeover(j, hring, &res, err, sizeof(err)) == 0 && res.answered == 3 &&
	      pvusb_journal_test_record(j)->entry[9] == 0, "TAKING at C is dropped (taken again)");
	pvusb_journal_close(j, true);
	j = setup("answered-uncounted", 100, 3, 0);
	pvusb_journal_test_record(j)->entry[1] = (uint64_t)100 << 32 | (uint64_t)PVUSB_JE_ANSWERED << 16 | 1;
	CHECK(j && pvusb_journal_takeover(j, hring, &res, err, sizeof(err)) == 0 && res.answered == 2 &&
	      res.completed == 1 && res.published == 3, "ANSWERED at Q is counted and published");
	pvusb_journal_close(j, true);
	j = setup("req-max", 100, 3, 13);
	CHECK(j && pvusb_journal_takeover(j, hring, &res, err, sizeof(err)) == 0, "req_prod exactly N past");
	pvusb_journal_close(j, true);
}

/* Identity and format, at open. */
static void test_open(void)
{
	char path[96], err[200];
	struct pvusb_ring_journal *j;
	snprintf(path, sizeof(path), "%s/none", dir);
	CHECK(pvusb_journal_open(path, &ID, &j, err, sizeof(err)) == -ENOENT, "no record");
	snprintf(path, sizeof(path), "%s/id", dir);
	struct usbif_ring fr;
	usbif_urb_front_init(&fr, hring);
	fr.sring->rsp_prod = 5;
	CHECK(pvusb_journal_create(path, &ID, hring, &j, err, sizeof(err)) == 0, "created");
	uint64_t tag;
	memcpy(&tag, hring + PVUSB_JOURNAL_TAG_OFFSET, sizeof(tag));
	CHECK(tag != 0 && tag == pvusb_journal_test_record(j)->ring_tag, "the ring page carries the tag");
	pvusb_journal_close(j, false);
	const uint32_t *w = (const uint32_t *)&ID;
	for (unsigned k = 0; k < 5; k++) {
		struct pvusb_journal_ident other = ID;
		((uint32_t *)&other)[k] = w[k] + 1;
		CHECK(pvusb_journal_open(path, &other, &j, err, sizeof(err)) == -ESTALE,
		      "a record of other rings (each identity word)");
	}
	CHECK(pvusb_journal_open(path, &ID, &j, err, sizeof(err)) == 0, "the same rings");
	uint32_t q, c;
	pvusb_journal_positions(j, &q, &c);
	CHECK(q == 5 && c == 5, "positions start where asked");
	pvusb_journal_test_record(j)->magic ^= 1;
	pvusb_journal_close(j, false);
	CHECK(pvusb_journal_open(path, &ID, &j, err, sizeof(err)) == -EPROTO, "no magic: incomplete record");
	CHECK(truncate(path, 100) == 0 && pvusb_journal_open(path, &ID, &j, err, sizeof(err)) == -EPROTO,
	      "a short file");
	CHECK(pvusb_journal_create(path, &ID, hring, &j, err, sizeof(err)) == 0, "create replaces");
	pvusb_journal_test_record(j)->version = 2;
	pvusb_journal_close(j, false);
	CHECK(pvusb_journal_open(path, &ID, &j, err, sizeof(err)) == -EPROTO, "another version");
	CHECK(pvusb_journal_create(path, &ID, hring, &j, err, sizeof(err)) == 0, "create again");
	/* the frontend set its rings up afresh (same grants, same port): no tag */
	struct pvusb_journal_result res;
	uint8_t before[PAGE];
	usbif_urb_front_init(&fr, hring);
	memcpy(before, hring, PAGE);
	CHECK(pvusb_journal_takeover(j, hring, &res, err, sizeof(err)) == -ESTALE &&
	      !memcmp(before, hring, PAGE), "a ring set up afresh is not taken over");
	pvusb_journal_close(j, true);
	CHECK(access(path, F_OK) < 0, "close with remove deletes the file");
}

/* A record and ring as the store orders leave them (k in flight, maybe a
 * slot half taken, maybe one half answered), then, half of the time, a few
 * random bits flipped in the record or the ring's indexes. The takeover
 * must refuse it untouched or take it over into a consistent state. */
static void garbage_case(struct pvusb_ring_record *r)
{
	uint32_t q = (uint32_t)rnd(1u << 31) * 2 + rnd(2);
	unsigned k = rnd(N + 1);
	uint32_t c = q + k;
	memset(r->entry, 0, sizeof(r->entry));
	unsigned slots[N];
	for (unsigned i = 0; i < N; i++)
		slots[i] = i;
	for (unsigned i = N - 1; i > 0; i--) {
		unsigned t = rnd(i + 1), x = slots[i];
		slots[i] = slots[t];
		slots[t] = x;
	}
	for (unsigned i = 0; i < k; i++) {
		bool taking = i == k - 1 && rnd(4) == 0;
		uint32_t idx = taking ? c - 1 : c - 1 - rnd(1000);
		r->entry[slots[i]] = (uint64_t)idx << 32 |
				     (uint64_t)(taking ? PVUSB_JE_TAKING : PVUSB_JE_TAKEN) << 16 | (i * 5 % N);
	}
	if (k && rnd(3) == 0) /* one of them answered, not counted */
		r->entry[slots[0]] = (uint64_t)q << 32 | (uint64_t)PVUSB_JE_ANSWERED << 16 | (r->entry[slots[0]] & 0xffff);
	if (k < N && rnd(3) == 0) /* a slot half taken */
		r->entry[slots[k]] = (uint64_t)c << 32 | (uint64_t)PVUSB_JE_TAKING << 16 | 99;
	r->flags = 0;
	r->pos = (uint64_t)q << 32 | c;
	struct usbif_ring_hdr *h = (struct usbif_ring_hdr *)hring;
	memset(hring, 0xa5, PAGE);
	memcpy(hring + PVUSB_JOURNAL_TAG_OFFSET, &r->ring_tag, sizeof(r->ring_tag));
	h->rsp_prod = q - rnd(N + 1);
	h->req_prod = c + rnd(N - k + 1);
	for (unsigned m = rnd(2) ? 1 + rnd(3) : 0; m; m--) {
		unsigned w = rnd(4);
		uint64_t bit = 1ull << rnd(64);
		if (w == 0)
			r->pos ^= bit;
		else if (w == 1)
			r->entry[rnd(N)] ^= bit;
		else if (w == 2)
			h->rsp_prod ^= (uint32_t)bit | (uint32_t)(bit >> 32);
		else
			h->req_prod ^= (uint32_t)bit | (uint32_t)(bit >> 32);
	}
}

static void test_garbage(void)
{
	char path[96], err[200];
	struct pvusb_ring_journal *j;
	snprintf(path, sizeof(path), "%s/garbage", dir);
	memset(hring, 0, PAGE);
	if (pvusb_journal_create(path, &ID, hring, &j, err, sizeof(err)) < 0) {
		CHECK(false, "garbage record created");
		return;
	}
	struct pvusb_ring_record *r = pvusb_journal_test_record(j);
	struct usbif_ring_hdr *h = (struct usbif_ring_hdr *)hring;
	unsigned accepted = 0, refused = 0, bad = 0;
	rng = 77;
	for (unsigned it = 0; it < 50000; it++) {
		garbage_case(r);
		static uint8_t rec0[PAGE], ring0[PAGE];
		memcpy(rec0, r, PAGE);
		memcpy(ring0, hring, PAGE);
		struct pvusb_journal_result res;
		int rc = pvusb_journal_takeover(j, hring, &res, err, sizeof(err));
		if (rc == -EPROTO) {
			refused++;
			bad += memcmp(rec0, r, PAGE) || memcmp(ring0, hring, PAGE);
			continue;
		}
		accepted++;
		uint32_t q2, c2;
		pvusb_journal_positions(j, &q2, &c2);
		bool ok = rc == 0 && q2 == c2 && h->rsp_prod == q2;
		for (unsigned i = 0; i < N; i++)
			ok = ok && r->entry[i] == 0;
		bad += !ok;
	}
	fprintf(stderr, "garbage: %u accepted, %u refused\n", accepted, refused);
	CHECK(bad == 0, "garbage: refused untouched or taken over consistently");
	CHECK(accepted > 10000 && refused > 10000, "garbage reaches both outcomes");
	pvusb_journal_close(j, true);
}

int main(void)
{
	/* on tmpfs where there is one, as /run is: hundreds of thousands of
	 * records are written and mapped */
	snprintf(dir, sizeof(dir), "%s/pvusb-journal.XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_open();
	test_hostile();
	test_garbage();
	test_crash_everywhere();
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	printf("journal: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
