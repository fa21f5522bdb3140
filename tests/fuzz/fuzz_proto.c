/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the pure protocol layer: usbif_req_copy_validate()
 * on arbitrary 148-byte ring slots, the pipe encode/decode pair, and the
 * ring index arithmetic of spec A.6. Every check is an invariant the rest of
 * the backend relies on; a violation traps (__builtin_trap), which libFuzzer
 * reports as a crash with the input saved.
 *
 * Input: byte 0 gives num_ports (0..31, so port-range checks see both an
 * empty and a full controller); the rest is cut into 148-byte slots, the
 * last one zero-padded. Each slot is validated and checked against a
 * spec-level model (spec B.1-B.7, E.7): the result must be 0 exactly when
 * the request breaks no rule, and otherwise one of the statuses that a rule
 * it breaks calls for (the order in which rules are checked is the
 * implementation's choice). The first 16 bytes of each slot also drive the
 * ring-index checks.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pvusb/request.h"
#include "pvusb/ring.h"
#include "pvusb/usbif.h"

#define SLOT 148u

#define FUZZ_NAME "fuzz_proto"
#include "invariant.h"

/* What the spec says about one request: the set of statuses it earns. */
struct verdict {
	bool shutdown; /* -ESHUTDOWN: malformed */
	bool nodev;    /* -ENODEV: port out of range */
	bool inval;    /* -EINVAL: reserved pipe bits, control direction contradiction */
};

static bool any(const struct verdict *v) { return v->shutdown || v->nodev || v->inval; }

static bool allows(const struct verdict *v, int rc)
{
	return (rc == USBIF_STATUS_SHUTDOWN && v->shutdown) || (rc == USBIF_STATUS_NODEV && v->nodev) ||
	       (rc == USBIF_STATUS_INVAL && v->inval);
}

/* Sum of segments [first, first+n), and whether each stays inside its page. */
static uint64_t seg_sum(const struct usbif_urb_request *q, unsigned first, unsigned n, bool *bad)
{
	uint64_t total = 0;
	for (unsigned i = first; i < first + n; i++) {
		if ((uint32_t)q->seg[i].offset + q->seg[i].length > USBIF_PAGE_SIZE)
			*bad = true;
		total += q->seg[i].length;
	}
	return total;
}

/* The model, written from the spec rather than from request.c. */
static struct verdict model(const struct usbif_urb_request *q, unsigned num_ports)
{
	struct verdict v = {0};
	struct usbif_pipe p = usbif_pipe_decode(q->pipe);
	if (p.port == 0 || p.port > num_ports)
		v.nodev = true;
	if (q->pipe & USBIF_PIPE_RESERVED_MASK)
		v.inval = true;
	if (q->nr_buffer_segs > USBIF_MAX_SEGMENTS_PER_REQUEST) {
		v.shutdown = true;
		return v; /* nothing else about the segments is meaningful */
	}
	bool bad = false;
	uint64_t data_len = seg_sum(q, 0, q->nr_buffer_segs, &bad);
	if (bad)
		v.shutdown = true;
	if (p.unlink) {
		if (q->nr_buffer_segs)
			v.shutdown = true;
		return v;
	}
	if ((uint16_t)data_len != q->buffer_length)
		v.shutdown = true;
	if (p.type == USBIF_PIPE_TYPE_ISOC) {
		unsigned ndesc = q->u.isoc.nr_frame_desc_segs;
		uint32_t np = q->u.isoc.number_of_packets;
		if (q->nr_buffer_segs + ndesc > USBIF_MAX_SEGMENTS_PER_REQUEST) {
			v.shutdown = true;
		} else {
			bool dbad = false;
			uint64_t desc_len = seg_sum(q, q->nr_buffer_segs, ndesc, &dbad);
			if (dbad || np > USBIF_MAX_ISO_PACKETS)
				v.shutdown = true;
			if ((data_len != 0 || ndesc != 0) &&
			    (np == 0 || (uint64_t)np * sizeof(struct usbif_iso_desc) > desc_len))
				v.shutdown = true;
		}
	} else if (p.type == USBIF_PIPE_TYPE_CTRL) {
		bool setup_in = (q->u.ctrl[0] & USB_DIR_IN) != 0;
		if (data_len != 0 && setup_in != p.in)
			v.inval = true;
	}
	return v;
}

static void check_accepted(const struct usbif_req *r, unsigned num_ports)
{
	const struct usbif_urb_request *q = &r->raw;
	REQUIRE(q->nr_buffer_segs <= USBIF_MAX_SEGMENTS_PER_REQUEST);
	REQUIRE(r->pipe.port >= 1 && r->pipe.port <= num_ports);
	REQUIRE(r->pipe.port <= USBIF_MAX_PORTNR);
	REQUIRE((q->pipe & USBIF_PIPE_RESERVED_MASK) == 0);
	uint64_t sum = 0;
	for (unsigned i = 0; i < q->nr_buffer_segs; i++) {
		REQUIRE((uint32_t)q->seg[i].offset + q->seg[i].length <= USBIF_PAGE_SIZE);
		sum += q->seg[i].length;
	}
	REQUIRE(r->data_len == sum);
	REQUIRE(r->data_len <= USBIF_MAX_SEGMENTS_PER_REQUEST * USBIF_PAGE_SIZE);
	if (r->pipe.unlink) {
		REQUIRE(q->nr_buffer_segs == 0);
		REQUIRE(r->data_len == 0);
		return;
	}
	REQUIRE((uint16_t)r->data_len == q->buffer_length);
	if (r->pipe.type == USBIF_PIPE_TYPE_ISOC) {
		REQUIRE(q->u.isoc.number_of_packets <= USBIF_MAX_ISO_PACKETS);
		REQUIRE(r->nr_desc_segs == q->u.isoc.nr_frame_desc_segs);
		REQUIRE(q->nr_buffer_segs + r->nr_desc_segs <= USBIF_MAX_SEGMENTS_PER_REQUEST);
		uint64_t dsum = 0;
		for (unsigned i = q->nr_buffer_segs; i < q->nr_buffer_segs + r->nr_desc_segs; i++) {
			REQUIRE((uint32_t)q->seg[i].offset + q->seg[i].length <= USBIF_PAGE_SIZE);
			dsum += q->seg[i].length;
		}
		REQUIRE(r->desc_len == dsum);
		/* the core copies number_of_packets descriptors out of desc_len bytes */
		if (r->data_len != 0 || r->nr_desc_segs != 0)
			REQUIRE((uint64_t)q->u.isoc.number_of_packets * sizeof(struct usbif_iso_desc) <=
				r->desc_len);
	} else {
		REQUIRE(r->nr_desc_segs == 0);
		REQUIRE(r->desc_len == 0);
	}
	if (r->pipe.type == USBIF_PIPE_TYPE_CTRL && r->data_len)
		REQUIRE(((q->u.ctrl[0] & USB_DIR_IN) != 0) == r->pipe.in);
}

static void check_slot(const uint8_t *slot, unsigned num_ports)
{
	struct usbif_urb_request q;
	memcpy(&q, slot, sizeof(q));
	struct usbif_req r;
	memset(&r, 0xa5, sizeof(r)); /* whatever the function leaves unset shows */
	int rc = usbif_req_copy_validate(slot, num_ports, &r);

	/* the copy is exact and the decoded pipe is the copy's */
	REQUIRE(memcmp(&r.raw, slot, SLOT) == 0);
	struct usbif_pipe p = usbif_pipe_decode(r.raw.pipe);
	REQUIRE(memcmp(&p, &r.pipe, sizeof(p)) == 0);

	struct verdict v = model(&q, num_ports);
	if (rc == 0) {
		if (any(&v))
			FAIL("a request breaking a rule was accepted");
		check_accepted(&r, num_ports);
	} else {
		REQUIRE(rc == USBIF_STATUS_SHUTDOWN || rc == USBIF_STATUS_NODEV ||
			rc == USBIF_STATUS_INVAL);
		if (!any(&v))
			FAIL("a well-formed request was refused");
		if (!allows(&v, rc))
			FAIL("refused with a status no broken rule calls for");
	}
	/* deterministic: a second look gives the same answer */
	struct usbif_req r2;
	REQUIRE(usbif_req_copy_validate(slot, num_ports, &r2) == rc);
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static void check_pipe(uint32_t raw, const uint8_t *b)
{
	/* decode then encode gives back every defined bit, and only those */
	struct usbif_pipe p = usbif_pipe_decode(raw);
	REQUIRE(usbif_pipe_encode(&p) == (raw & ~USBIF_PIPE_RESERVED_MASK));
	REQUIRE(p.port <= USBIF_MAX_PORTNR && p.devaddr <= USBIF_MAX_ADDR && p.endpoint <= 15 &&
		p.type <= 3);
	/* encode of arbitrary fields sets no reserved bit and round-trips the masked fields */
	struct usbif_pipe f = {
		.port = b[0], .unlink = b[1] & 1, .in = b[1] & 2, .devaddr = b[2], .endpoint = b[3],
		.type = (uint8_t)(b[1] >> 2),
	};
	uint32_t e = usbif_pipe_encode(&f);
	REQUIRE((e & USBIF_PIPE_RESERVED_MASK) == 0);
	struct usbif_pipe g = usbif_pipe_decode(e);
	REQUIRE(g.port == (f.port & USBIF_PIPE_PORT_MASK) && g.unlink == f.unlink && g.in == f.in &&
		g.devaddr == (f.devaddr & USBIF_PIPE_DEV_MASK) &&
		g.endpoint == (f.endpoint & USBIF_PIPE_EP_MASK) &&
		g.type == (f.type & USBIF_PIPE_TYPE_MASK));
	REQUIRE(usbif_pipe_encode(&g) == e);
}

/* A.6 on arbitrary indexes: hostile exactly when req_prod is more than N
 * ahead of rsp_prod_pvt, and never more requests than have response slots. */
static void check_ring(const uint8_t *b)
{
	static union usbif_urb_slot page[4096 / sizeof(union usbif_urb_slot) + 1];
	struct usbif_ring be;
	usbif_urb_back_attach(&be, page);
	uint32_t prod = rd32(b), rsp = rd32(b + 4);
	/* a backend never has more than N taken and unanswered */
	uint32_t cons = rsp + (b[8] % (USB_URB_RING_SIZE + 1));
	be.sring->req_prod = prod;
	be.prod_pvt = rsp;
	be.cons = cons;
	bool hostile = false;
	uint32_t n = usbif_back_unconsumed(&be, &hostile);
	REQUIRE(hostile == ((uint32_t)(prod - rsp) > USB_URB_RING_SIZE));
	if (hostile) {
		REQUIRE(n == 0);
	} else {
		REQUIRE(n <= USB_URB_RING_SIZE);
		REQUIRE((uint32_t)(cons + n - rsp) <= USB_URB_RING_SIZE); /* a response slot each */
		if ((uint32_t)(prod - cons) <= USB_URB_RING_SIZE)
			REQUIRE(n <= (uint32_t)(prod - cons)); /* only what was produced */
	}

	/* the frontend side: a backend more than N ahead is hostile (B.9) */
	struct usbif_ring fe;
	usbif_urb_back_attach(&fe, page); /* attach only: keep the header we wrote */
	fe.cons = rsp;
	be.sring->rsp_prod = prod;
	hostile = false;
	n = usbif_front_unconsumed(&fe, &hostile);
	REQUIRE(hostile == ((uint32_t)(prod - rsp) > USB_URB_RING_SIZE));
	REQUIRE(hostile ? n == 0 : n == (uint32_t)(prod - rsp));

	/* the notification rule (A.4): notify iff event lies in (old, new] */
	uint32_t old = rd32(b + 12), ev = rd32(b + 8);
	be.sring->rsp_prod = old;
	be.sring->rsp_event = ev;
	be.prod_pvt = prod;
	bool notify = usbif_back_push_responses(&be);
	REQUIRE(be.sring->rsp_prod == prod);
	REQUIRE(notify == ((uint32_t)(prod - ev) < (uint32_t)(prod - old)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned num_ports = data[0] % (USBIF_MAX_PORTNR + 1);
	data++;
	size--;
	do {
		uint8_t slot[SLOT] __attribute__((aligned(4))) = {0};
		size_t n = size < SLOT ? size : SLOT;
		memcpy(slot, data, n);
		check_slot(slot, num_ports);
		check_pipe(rd32(slot + 4), slot);
		check_ring(slot);
		data += n;
		size -= n;
	} while (size > 0);
	return 0;
}
