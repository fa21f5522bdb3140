/* SPDX-License-Identifier: MIT */
/*
 * The protocol layer against the spec's tables: layout (A-C, besides the
 * compile-time asserts), pipe examples (B.3), ring arithmetic across 2^32,
 * the notification rule (A.4), hostile-index checks (A.6), conn tokens
 * (C.2), and the exact status of every malformed request (B.5, B.8, E.7).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "pvusb/request.h"
#include "pvusb/devname.h"
#include "pvusb/ring.h"

#include "check.h"

static void test_layout(void)
{
	/* a request written byte by byte at the spec's offsets reads back */
	uint8_t raw[148] = {0};
	raw[0] = 0x34, raw[1] = 0x12;                  /* id */
	raw[2] = 3;                                    /* nr_buffer_segs */
	raw[4] = 0x81, raw[7] = 0x80;                  /* pipe 0x80000081 */
	raw[10] = 0x12;                                /* buffer_length 18 */
	raw[12] = 0x80, raw[13] = 6;                   /* bmRequestType, bRequest */
	raw[140] = 0x78, raw[144] = 0x10, raw[146] = 0x20; /* seg[15] */
	struct usbif_urb_request r;
	memcpy(&r, raw, sizeof(r));
	CHECK(r.id == 0x1234 && r.nr_buffer_segs == 3, "id and nr_buffer_segs offsets");
	CHECK(r.pipe == 0x80000081u && r.buffer_length == 18, "pipe and buffer_length offsets");
	CHECK(r.u.ctrl[0] == 0x80 && r.u.ctrl[1] == 6, "SETUP at offset 12");
	CHECK(r.seg[15].gref == 0x78 && r.seg[15].offset == 0x10 && r.seg[15].length == 0x20,
	      "seg[15] at 140");
	CHECK(USB_URB_RING_SIZE == 16 && USB_CONN_RING_SIZE == 512, "ring sizes N");
	CHECK(sizeof(struct usbif_urb_sring) == 2432 && sizeof(struct usbif_conn_sring) == 2112,
	      "bytes used by each ring");
}

static void test_pipe(void)
{
	struct usbif_pipe p = {.port = 1, .in = true, .devaddr = 0, .endpoint = 0, .type = USBIF_PIPE_TYPE_CTRL};
	CHECK(usbif_pipe_encode(&p) == 0x80000081u, "GET_DESCRIPTOR to address 0 on port 1");
	struct usbif_pipe q = {.port = 3, .in = false, .devaddr = 5, .endpoint = 2, .type = USBIF_PIPE_TYPE_BULK};
	CHECK(usbif_pipe_encode(&q) == 0xC0010503u, "bulk OUT ep 2 dev 5 port 3");
	struct usbif_pipe d = usbif_pipe_decode(0xC0010503u);
	CHECK(d.port == 3 && !d.in && d.devaddr == 5 && d.endpoint == 2 && d.type == USBIF_PIPE_TYPE_BULK &&
	      !d.unlink, "decode of the bulk example");
	d = usbif_pipe_decode(0x80000081u | USBIF_PIPE_UNLINK);
	CHECK(d.unlink && d.port == 1 && d.in, "unlink bit");
	struct usbif_pipe m = {.port = 31, .unlink = true, .in = true, .devaddr = 127, .endpoint = 15,
			       .type = USBIF_PIPE_TYPE_INT};
	struct usbif_pipe back = usbif_pipe_decode(usbif_pipe_encode(&m));
	CHECK(!memcmp(&m, &back, sizeof(m)), "maximal fields round-trip");
}

/* Both sides on one page, indexes started just below 2^32. */
static void test_ring_wrap(void)
{
	static uint8_t page[4096] __attribute__((aligned(64)));
	struct usbif_ring fe, be;
	usbif_urb_front_init(&fe, page);
	usbif_urb_back_attach(&be, page);
	const uint32_t start = 0xfffffff0u;
	fe.prod_pvt = fe.cons = be.prod_pvt = be.cons = start;
	fe.sring->req_prod = fe.sring->rsp_prod = start;
	fe.sring->req_event = fe.sring->rsp_event = start + 1;
	unsigned moved = 0;
	bool hostile = false, ok = true;
	for (int round = 0; round < 8; round++) {
		for (int i = 0; i < 10; i++) {
			struct usbif_urb_request *req = usbif_ring_slot(&fe, fe.prod_pvt++);
			req->id = (uint16_t)(moved + (unsigned)i);
		}
		CHECK(usbif_front_free(&fe) == 6, "free slots after 10 requests");
		usbif_front_push_requests(&fe);
		uint32_t n = usbif_back_unconsumed(&be, &hostile);
		ok = ok && n == 10 && !hostile;
		for (uint32_t i = 0; i < n; i++) {
			const struct usbif_urb_request *req = usbif_ring_slot(&be, be.cons++);
			struct usbif_urb_response *rsp = usbif_ring_slot(&be, be.prod_pvt++);
			uint16_t id = req->id;
			rsp->id = id;
		}
		usbif_back_push_responses(&be);
		n = usbif_front_unconsumed(&fe, &hostile);
		ok = ok && n == 10;
		for (uint32_t i = 0; i < n; i++) {
			const struct usbif_urb_response *rsp = usbif_ring_slot(&fe, fe.cons++);
			ok = ok && rsp->id == (uint16_t)(moved + i);
		}
		moved += 10;
	}
	CHECK(ok, "80 requests and responses across the 2^32 wrap, in order");
	CHECK(fe.prod_pvt < start, "the index really wrapped");
}

static void test_notify_rule(void)
{
	static uint8_t page[4096];
	struct usbif_ring fe;
	usbif_urb_front_init(&fe, page);
	CHECK(fe.sring->req_event == 1 && fe.sring->rsp_event == 1, "A.3 initial events");
	fe.prod_pvt = 1;
	CHECK(usbif_front_push_requests(&fe), "first request notifies (req_event 1 in (0,1])");
	fe.prod_pvt = 3;
	CHECK(!usbif_front_push_requests(&fe), "no notify while the backend has not asked");
	fe.sring->req_event = 5;
	fe.prod_pvt = 4;
	CHECK(!usbif_front_push_requests(&fe), "event 5 not in (3,4]");
	fe.prod_pvt = 6;
	CHECK(usbif_front_push_requests(&fe), "event 5 in (4,6]");
}

static void test_hostile_indexes(void)
{
	static uint8_t page[4096];
	struct usbif_ring fe, be;
	usbif_urb_front_init(&fe, page);
	usbif_urb_back_attach(&be, page);
	bool hostile = false;
	fe.sring->req_prod = 16;
	CHECK(usbif_back_unconsumed(&be, &hostile) == 16 && !hostile, "16 ahead is legal");
	be.cons = 16; /* all 16 taken, none answered: no room for more */
	fe.sring->req_prod = 16;
	CHECK(usbif_back_unconsumed(&be, &hostile) == 0 && !hostile, "no room without responses");
	fe.sring->req_prod = 17;
	usbif_back_unconsumed(&be, &hostile);
	CHECK(hostile, "17 ahead of rsp_prod_pvt is hostile (A.6)");
	hostile = false;
	fe.sring->rsp_prod = 17;
	usbif_front_unconsumed(&fe, &hostile);
	CHECK(hostile, "a backend 17 ahead is hostile (B.9)");
	/* final check arms the event and reports what arrived meanwhile */
	usbif_urb_back_attach(&be, page);
	fe.sring->req_prod = 0;
	hostile = false;
	CHECK(!usbif_back_final_check(&be, &hostile) && fe.sring->req_event == 1, "final check arms event");
}

static void test_conn_tokens(void)
{
	static uint8_t page[4096];
	struct usbif_ring fe, be;
	usbif_conn_front_init(&fe, page);
	usbif_conn_back_attach(&be, page);
	uint16_t tok;
	CHECK(usbif_conn_back_take_token(&be, &tok) == -EAGAIN, "no token before the FE posts any");
	for (uint16_t i = 0; i < 512; i++)
		((struct usbif_conn_request *)usbif_ring_slot(&fe, fe.prod_pvt++))->id = (uint16_t)(500 + i);
	usbif_front_push_requests(&fe);
	CHECK(usbif_conn_back_take_token(&be, &tok) == 0 && tok == 500, "first token id");
	CHECK(be.sring->req_event == be.cons + 1, "req_event = req_cons + 1 (C.2)");
	fe.sring->req_prod += 1000;
	CHECK(usbif_conn_back_take_token(&be, &tok) == -EPROTO, "a conn flood is hostile");
}

/* ---- validation ---- */

static struct usbif_urb_request base_req(void)
{
	struct usbif_urb_request r = {.id = 7, .nr_buffer_segs = 1, .pipe = 0xC0010503u,
				      .buffer_length = 100};
	r.seg[0] = (struct usbif_request_segment){.gref = 9, .offset = 0, .length = 100};
	return r;
}

static int validate(const struct usbif_urb_request *q, unsigned ports)
{
	struct usbif_req r;
	int rc = usbif_req_copy_validate(q, ports, &r);
	CHECK(r.raw.id == q->id, "id survives validation");
	return rc;
}

static void test_validation(void)
{
	struct usbif_urb_request q = base_req();
	CHECK(validate(&q, 8) == 0, "well-formed bulk OUT");
	q.nr_buffer_segs = 17;
	CHECK(validate(&q, 8) == -108, "17 segments -> -ESHUTDOWN");
	q = base_req();
	q.seg[0].offset = 4000;
	CHECK(validate(&q, 8) == -108, "offset+length > 4096 -> -ESHUTDOWN");
	q = base_req();
	q.pipe &= ~USBIF_PIPE_PORT_MASK;
	CHECK(validate(&q, 8) == -19, "port 0 -> -ENODEV");
	q = base_req();
	CHECK(validate(&q, 2) == -19, "port beyond num-ports -> -ENODEV");
	q = base_req();
	q.pipe |= 1u << 20;
	CHECK(validate(&q, 8) == -22, "reserved pipe bit -> -EINVAL");
	q = base_req();
	q.buffer_length = 99;
	CHECK(validate(&q, 8) == -108, "buffer_length disagreeing with segments -> -ESHUTDOWN");
	q = base_req();
	q.nr_buffer_segs = 16;
	for (int i = 0; i < 16; i++)
		q.seg[i] = (struct usbif_request_segment){.gref = (uint32_t)i, .offset = 0, .length = 4096};
	q.buffer_length = 0; /* 65536 wraps the 16-bit field (B.5) */
	CHECK(validate(&q, 8) == 0, "64 KiB buffer with buffer_length 0 accepted");
	/* unlink carrying segments */
	q = base_req();
	q.pipe |= USBIF_PIPE_UNLINK;
	CHECK(validate(&q, 8) == -108, "unlink with segments -> -ESHUTDOWN");
	q.nr_buffer_segs = 0;
	q.buffer_length = 0;
	CHECK(validate(&q, 8) == 0, "plain unlink accepted");
	/* control direction must agree with the pipe's */
	q = base_req();
	q.pipe = 0x80000081u; /* control IN */
	q.u.ctrl[0] = 0x00;   /* but an OUT SETUP */
	CHECK(validate(&q, 8) == -22, "control direction contradiction -> -EINVAL");
	q.u.ctrl[0] = 0x80;
	CHECK(validate(&q, 8) == 0, "consistent control IN");
	/* isochronous */
	q = base_req();
	q.pipe = 0x00020081u | (1u << 8); /* isoc IN ep 4 dev 1 port 1 */
	q.nr_buffer_segs = 1;
	q.u.isoc.number_of_packets = 4;
	q.u.isoc.nr_frame_desc_segs = 1;
	q.seg[1] = (struct usbif_request_segment){.gref = 3, .offset = 0, .length = 64};
	CHECK(validate(&q, 8) == 0, "isochronous with 4 descriptors in 64 bytes");
	q.u.isoc.number_of_packets = 5;
	CHECK(validate(&q, 8) == -108, "more descriptors than their segments hold -> -ESHUTDOWN");
	q.u.isoc.number_of_packets = 4;
	q.u.isoc.nr_frame_desc_segs = 16;
	CHECK(validate(&q, 8) == -108, "buffer + descriptor segments > 16 -> -ESHUTDOWN");
	q.u.isoc.nr_frame_desc_segs = 1;
	q.u.isoc.number_of_packets = 0;
	CHECK(validate(&q, 8) == -108, "isochronous data with 0 packets -> -ESHUTDOWN");
}

/* Parse name; check the outcome and, on error, that err contains want. */
static bool name_fails_with(const char *name, const char *want)
{
	struct pvusb_devname n;
	char err[256] = "";
	return pvusb_devname_parse(name, &n, err, sizeof(err)) == -EINVAL && strstr(err, want);
}

static void test_devname(void)
{
	struct pvusb_devname n;
	char err[256], buf[64];
	CHECK(pvusb_devname_parse("2-4.3.3", &n, err, sizeof(err)) == 0 && n.kind == PVUSB_DEVNAME_BUSPATH &&
		      n.bus == 2 && n.nports == 3 && n.ports[0] == 4 && n.ports[2] == 3,
	      "bus path 2-4.3.3");
	pvusb_devname_buspath(n.bus, n.ports, n.nports, buf, sizeof(buf));
	CHECK(!strcmp(buf, "2-4.3.3"), "bus path formats back");
	CHECK(pvusb_devname_parse("1.6", &n, err, sizeof(err)) == 0 && n.kind == PVUSB_DEVNAME_BUSADDR &&
		      n.bus == 1 && n.addr == 6,
	      "bus.address 1.6");
	CHECK(pvusb_devname_parse("host:1.10", &n, err, sizeof(err)) == 0 && n.addr == 10,
	      "host: prefix, address 10 read as decimal");
	CHECK(name_fails_with("1.06", "leading zero") && name_fails_with("01.6", "not octal") &&
		      name_fails_with("1-04", "decimal"),
	      "leading zeros refused with the reason");
	CHECK(name_fails_with("1.128", "1..127") && name_fails_with("0.5", "1..255") &&
		      name_fails_with("1-1.2.3.4.5.6.7.8", "deeper"),
	      "ranges and depth");
	CHECK(pvusb_devname_parse("046d:C016", &n, err, sizeof(err)) == 0 && n.kind == PVUSB_DEVNAME_VIDPID &&
		      n.vendor == 0x046d && n.product == 0xc016 && !n.serial[0],
	      "vendor:product");
	CHECK(pvusb_devname_parse("host:0424:460:AB12", &n, err, sizeof(err)) == 0 && n.product == 0x460 &&
		      !strcmp(n.serial, "AB12"),
	      "vendor:product:serial with host: prefix, 3-digit product");
	CHECK(name_fails_with("046d:c0167", "hex") && name_fails_with("046d:", "hex") &&
		      name_fails_with("046d:c016:", "empty"),
	      "bad vendor:product forms");
	CHECK(pvusb_devname_parse("storage:/tmp/x.img,ro", &n, err, sizeof(err)) == 0 &&
		      n.kind == PVUSB_DEVNAME_EMUL && !strcmp(n.emul, "storage") && !strcmp(n.arg, "/tmp/x.img,ro"),
	      "emulated storage with its image");
	CHECK(name_fails_with("storage", "image") && name_fails_with("mouse", "unknown device") &&
		      name_fails_with("", "empty"),
	      "bad emulated names");
}

int main(void)
{
	test_devname();
	test_layout();
	test_pipe();
	test_ring_wrap();
	test_notify_rule();
	test_hostile_indexes();
	test_conn_tokens();
	test_validation();
	printf("test_proto: %d passed, %d failed\n", passed, failed);
	return failed != 0;
}
