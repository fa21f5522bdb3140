/* SPDX-License-Identifier: MIT */
/*
 * Seed inputs for the two fuzzers, written by code so they stay readable:
 *   gen_corpus <request-seed-dir> <proto-seed-dir> [<list-file-request> <list-file-proto>]
 * The request seeds follow fuzz_request.c's layout (flags byte, unplug byte,
 * 148-byte requests, tail copied to every data page); the proto seeds are a
 * num_ports byte followed by the same requests. The optional list files get
 * the comma-separated seed paths, for libFuzzer's -seed_inputs=@FILE.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pvusb/usbif.h"

#define MAXREQ 32

struct seed {
	uint8_t flags, unplug;
	struct usbif_urb_request req[MAXREQ];
	unsigned n;
	uint8_t tail[147];
	unsigned tail_len;
};

static struct usbif_urb_request *add(struct seed *s)
{
	if (s->n >= MAXREQ) {
		fprintf(stderr, "gen_corpus: too many requests in one seed\n");
		exit(1);
	}
	struct usbif_urb_request *q = &s->req[s->n++];
	memset(q, 0, sizeof(*q));
	return q;
}

static uint32_t pipe_of(uint8_t port, uint8_t addr, uint8_t ep, bool in, uint8_t type)
{
	struct usbif_pipe p = {.port = port, .in = in, .devaddr = addr, .endpoint = ep, .type = type};
	return usbif_pipe_encode(&p);
}

static void one_seg(struct usbif_urb_request *q, uint32_t gref, uint16_t off, uint16_t len)
{
	if (!len)
		return;
	q->nr_buffer_segs = 1;
	q->seg[0] = (struct usbif_request_segment){.gref = gref, .offset = off, .length = len};
	q->buffer_length = len;
}

static void ctrl(struct seed *s, uint8_t port, uint8_t addr, uint8_t rt, uint8_t req, uint16_t value,
		 uint16_t index, uint16_t len, uint32_t gref)
{
	struct usbif_urb_request *q = add(s);
	bool in = rt & USB_DIR_IN;
	q->pipe = pipe_of(port, addr, 0, in, USBIF_PIPE_TYPE_CTRL);
	uint8_t setup[8] = {rt, req, (uint8_t)value, (uint8_t)(value >> 8), (uint8_t)index,
			    (uint8_t)(index >> 8), (uint8_t)len, (uint8_t)(len >> 8)};
	memcpy(q->u.ctrl, setup, 8);
	one_seg(q, gref, 0, len);
}

static void set_address(struct seed *s, uint8_t port, uint8_t addr)
{
	ctrl(s, port, 0, 0x00, USB_REQ_SET_ADDRESS, addr, 0, 0, 0);
}

static void set_config(struct seed *s, uint8_t port, uint8_t addr, uint8_t cfg)
{
	ctrl(s, port, addr, 0x00, USB_REQ_SET_CONFIGURATION, cfg, 0, 0, 0);
}

/* A fresh seed whose device at port is addressed and in configuration 1. */
static void configured_seed(struct seed *s, uint8_t flags, uint8_t port, uint8_t addr)
{
	memset(s, 0, sizeof(*s));
	s->flags = flags;
	set_address(s, port, addr);
	set_config(s, port, addr, 1);
}

static struct usbif_urb_request *xfer(struct seed *s, uint8_t type, uint8_t port, uint8_t addr,
				      uint8_t ep, bool in, uint32_t gref, uint16_t len)
{
	struct usbif_urb_request *q = add(s);
	q->pipe = pipe_of(port, addr, ep, in, type);
	one_seg(q, gref, 0, len);
	if (type == USBIF_PIPE_TYPE_INT)
		q->u.intr.interval = 4;
	return q;
}

static void unlink_req(struct seed *s, uint32_t target_pipe, uint16_t target_id)
{
	struct usbif_urb_request *q = add(s);
	q->pipe = target_pipe | USBIF_PIPE_UNLINK;
	q->u.unlink.unlink_id = target_id;
}

/* CBW (BOT 5.1) number k in the tail, at offset 31*k of every data page. */
static void cbw_at(struct seed *s, unsigned k, uint32_t tag, uint32_t len, bool in,
		   const uint8_t *cdb, uint8_t cdb_len)
{
	uint8_t *t = s->tail + 31 * k;
	memset(t, 0, 31);
	memcpy(t, "USBC", 4);
	for (int i = 0; i < 4; i++) {
		t[4 + i] = (uint8_t)(tag >> (8 * i));
		t[8 + i] = (uint8_t)(len >> (8 * i));
	}
	t[12] = in ? 0x80 : 0;
	t[13] = 0;
	t[14] = cdb_len;
	memcpy(t + 15, cdb, cdb_len);
	if (s->tail_len < 31 * (k + 1))
		s->tail_len = 31 * (k + 1);
}

static void cbw_tail(struct seed *s, uint32_t tag, uint32_t len, bool in, const uint8_t *cdb,
		     uint8_t cdb_len)
{
	cbw_at(s, 0, tag, len, in, cdb, cdb_len);
}

/* One whole BOT command on storage at (port 3, address 7): CBW k from the
 * tail, the data phase, the CSW. */
static void scsi(struct seed *s, unsigned k, const uint8_t *cdb, uint8_t cdb_len, bool in,
		 uint16_t data_len)
{
	cbw_at(s, k, 100 + k, data_len, in, cdb, cdb_len);
	struct usbif_urb_request *q = xfer(s, USBIF_PIPE_TYPE_BULK, 3, 7, 2, false, 10 + k, 31);
	q->seg[0].offset = (uint16_t)(31 * k);
	if (data_len)
		xfer(s, USBIF_PIPE_TYPE_BULK, 3, 7, in ? 1 : 2, in, 20 + k, data_len);
	xfer(s, USBIF_PIPE_TYPE_BULK, 3, 7, 1, true, 30 + k, 13);
}

static void storage_setup(struct seed *s, uint8_t flags)
{
	memset(s, 0, sizeof(*s));
	s->flags = flags;
	set_address(s, 3, 7);
	set_config(s, 3, 7, 1);
}

/* ---- writing ---- */

static FILE *list_req, *list_proto;

static void add_to_list(FILE **list, const char *path)
{
	if (!*list)
		return;
	static bool first_req = true, first_proto = true;
	bool *first = list == &list_req ? &first_req : &first_proto;
	fprintf(*list, "%s%s", *first ? "" : ",", path);
	*first = false;
}

static void write_file(const char *dir, const char *name, const uint8_t *b, size_t n, FILE **list)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(b, 1, n, f) != n || fclose(f) != 0) {
		fprintf(stderr, "gen_corpus: cannot write %s: %s\n", path, strerror(errno));
		exit(1);
	}
	add_to_list(list, path);
}

static const char *req_dir, *proto_dir;

static void emit(const char *name, const struct seed *s)
{
	static uint8_t buf[2 + MAXREQ * sizeof(struct usbif_urb_request) + 147];
	size_t n = 0;
	buf[n++] = s->flags;
	buf[n++] = s->unplug;
	memcpy(buf + n, s->req, s->n * sizeof(s->req[0]));
	n += s->n * sizeof(s->req[0]);
	memcpy(buf + n, s->tail, s->tail_len);
	n += s->tail_len;
	write_file(req_dir, name, buf, n, &list_req);

	/* proto: 4 ports, then the requests alone */
	buf[0] = 4;
	write_file(proto_dir, name, buf, 1 + s->n * sizeof(s->req[0]), &list_proto);
}

#define ROUND(k) ((uint8_t)(((k) - 1) << 4))
#define F_KEEP_IDS 0x01
#define F_UNLINK 0x02
#define F_HOSTILE 0x04
#define F_ALWAYS_KICK 0x08
#define UNPLUG(port, after_round, now) ((uint8_t)((port) | ((after_round) << 2) | ((now) ? 0x40 : 0)))

int main(int argc, char **argv)
{
	if (argc != 3 && argc != 5) {
		fprintf(stderr, "usage: %s <request-dir> <proto-dir> [<request-list> <proto-list>]\n",
			argv[0]);
		return 2;
	}
	static char abs_dir[2][PATH_MAX];
	for (int i = 1; i <= 2; i++)
		if ((mkdir(argv[i], 0755) < 0 && errno != EEXIST) || !realpath(argv[i], abs_dir[i - 1])) {
			fprintf(stderr, "gen_corpus: mkdir %s: %s\n", argv[i], strerror(errno));
			return 1;
		}
	/* absolute paths in the lists: tests run from wherever meson likes */
	req_dir = abs_dir[0];
	proto_dir = abs_dir[1];
	if (argc == 5) {
		list_req = fopen(argv[3], "w");
		list_proto = fopen(argv[4], "w");
		if (!list_req || !list_proto) {
			fprintf(stderr, "gen_corpus: cannot write the list files\n");
			return 1;
		}
	}
	struct seed s;

	/* GET_DESCRIPTOR(device) at address 0 on port 1: pipe 0x80000081, 18 bytes at gref 10 */
	memset(&s, 0, sizeof(s));
	ctrl(&s, 1, 0, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0100, 0, 18, 10);
	emit("getdesc-addr0", &s);

	/* source/sink: address, descriptors, configure, bulk both ways,
	 * interrupt IN, vendor control loopback */
	memset(&s, 0, sizeof(s));
	s.flags = ROUND(16);
	set_address(&s, 1, 5);
	ctrl(&s, 1, 5, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0100, 0, 18, 10);
	ctrl(&s, 1, 5, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0200, 0, 9, 11);
	ctrl(&s, 1, 5, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0200, 0, 255, 12);
	ctrl(&s, 1, 5, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0302, 0x0409, 255, 13);
	set_config(&s, 1, 5, 1);
	xfer(&s, USBIF_PIPE_TYPE_BULK, 1, 5, 1, true, 14, 512);
	xfer(&s, USBIF_PIPE_TYPE_BULK, 1, 5, 2, false, 15, 512);
	xfer(&s, USBIF_PIPE_TYPE_INT, 1, 5, 3, true, 16, 64);
	ctrl(&s, 1, 5, 0x40, 0x5b, 0, 0, 64, 17);
	ctrl(&s, 1, 5, 0xc0, 0x5c, 0, 0, 64, 18);
	emit("sourcesink-enum-bulk", &s);

	/* source/sink, a bulk IN of 64 KiB over 16 segments, one not contiguous */
	configured_seed(&s, ROUND(1), 1, 5);
	{
		struct usbif_urb_request *q = xfer(&s, USBIF_PIPE_TYPE_BULK, 1, 5, 1, true, 0, 0);
		q->nr_buffer_segs = 16;
		for (unsigned i = 0; i < 16; i++)
			q->seg[i] = (struct usbif_request_segment){
				.gref = 20 + i + (i >= 8), .offset = 0, .length = 4096};
		q->buffer_length = 0; /* 65536 wraps to 0 (B.5) */
		q->transfer_flags = USBIF_SHORT_NOT_OK;
	}
	emit("sourcesink-bulk-64k", &s);

	/* source/sink alternate setting 1: isochronous IN and OUT, 3 packets
	 * each, descriptors (in the tail) at offset 0 of the descriptor page */
	configured_seed(&s, ROUND(4), 1, 5);
	ctrl(&s, 1, 5, 0x01, USB_REQ_SET_INTERFACE, 1, 0, 0, 0);
	for (int dir = 0; dir < 2; dir++) {
		bool in = dir == 0;
		struct usbif_urb_request *q = add(&s);
		q->pipe = pipe_of(1, 5, in ? 4 : 5, in, USBIF_PIPE_TYPE_ISOC);
		q->nr_buffer_segs = 1;
		q->seg[0] = (struct usbif_request_segment){.gref = in ? 30 : 32, .offset = 0, .length = 3072};
		q->buffer_length = 3072;
		q->u.isoc.interval = 1;
		q->u.isoc.number_of_packets = 3;
		q->u.isoc.nr_frame_desc_segs = 1;
		q->seg[1] = (struct usbif_request_segment){.gref = in ? 31 : 33, .offset = 0, .length = 48};
	}
	for (unsigned k = 0; k < 3; k++) {
		uint32_t off = k * 1024, len = 1024;
		memcpy(s.tail + 16 * k, &off, 4);
		memcpy(s.tail + 16 * k + 4, &len, 4);
	}
	s.tail_len = 48;
	emit("sourcesink-isoc", &s);

	/* tablet: enumerate, HID class requests, an interrupt IN that waits,
	 * its unlink, and another left for the F_UNLINK cleanup */
	memset(&s, 0, sizeof(s));
	s.flags = ROUND(16) | F_UNLINK;
	set_address(&s, 2, 9);                                      /* id 0 */
	set_config(&s, 2, 9, 1);                                    /* id 1 */
	ctrl(&s, 2, 9, 0x81, USB_REQ_GET_DESCRIPTOR, 0x2200, 0, 64, 10); /* report descriptor, id 2 */
	ctrl(&s, 2, 9, 0x21, 0x0a, 0, 0, 0, 0);                     /* SET_IDLE, id 3 */
	xfer(&s, USBIF_PIPE_TYPE_INT, 2, 9, 1, true, 11, 8);        /* id 4: waits */
	unlink_req(&s, pipe_of(2, 9, 1, true, USBIF_PIPE_TYPE_INT), 4); /* id 5 */
	xfer(&s, USBIF_PIPE_TYPE_INT, 2, 9, 1, true, 12, 8);        /* id 6: cleanup unlinks it */
	emit("tablet-int-unlink", &s);

	/* storage: INQUIRY through the whole BOT cycle, one request per round */
	static const uint8_t inquiry[6] = {0x12, 0, 0, 0, 36, 0};
	configured_seed(&s, ROUND(1), 3, 7);
	ctrl(&s, 3, 7, 0xa1, 0xfe, 0, 0, 1, 10); /* GET_MAX_LUN */
	xfer(&s, USBIF_PIPE_TYPE_BULK, 3, 7, 2, false, 11, 31);
	xfer(&s, USBIF_PIPE_TYPE_BULK, 3, 7, 1, true, 12, 36);
	xfer(&s, USBIF_PIPE_TYPE_BULK, 3, 7, 1, true, 13, 13);
	cbw_tail(&s, 1, 36, true, inquiry, 6);
	emit("storage-inquiry", &s);

	/* storage: READ(10) of 2 blocks into a split, non-contiguous buffer;
	 * the IN transfers go out first and wait for the CBW */
	static const uint8_t read10[10] = {0x28, 0, 0, 0, 0, 0, 0, 0, 2, 0};
	configured_seed(&s, ROUND(16), 3, 7);
	{
		struct usbif_urb_request *q = xfer(&s, USBIF_PIPE_TYPE_BULK, 3, 7, 1, true, 0, 0);
		q->nr_buffer_segs = 2;
		q->seg[0] = (struct usbif_request_segment){.gref = 40, .offset = 100, .length = 500};
		q->seg[1] = (struct usbif_request_segment){.gref = 42, .offset = 0, .length = 524};
		q->buffer_length = 1024;
	}
	xfer(&s, USBIF_PIPE_TYPE_BULK, 3, 7, 1, true, 43, 13);
	xfer(&s, USBIF_PIPE_TYPE_BULK, 3, 7, 2, false, 44, 31);
	cbw_tail(&s, 2, 1024, true, read10, 10);
	emit("storage-read10-parked", &s);

	/* storage: WRITE(10) with FUA of one block, then the CSW */
	static const uint8_t write10[10] = {0x2a, 0x08, 0, 0, 0, 1, 0, 0, 1, 0};
	configured_seed(&s, ROUND(2), 3, 7);
	xfer(&s, USBIF_PIPE_TYPE_BULK, 3, 7, 2, false, 50, 31);
	xfer(&s, USBIF_PIPE_TYPE_BULK, 3, 7, 2, false, 51, 512);
	xfer(&s, USBIF_PIPE_TYPE_BULK, 3, 7, 1, true, 52, 13);
	cbw_tail(&s, 3, 512, false, write10, 10);
	emit("storage-write10", &s);

	/* storage: more SCSI commands, four CBWs per input at offsets 0, 31, 62, 93 */
	{
		static const uint8_t tur[6] = {0x00}, cap10[10] = {0x25},
				     sense6[6] = {0x1a, 0, 0x3f, 0, 192, 0}, reqsense[6] = {0x03, 0, 0, 0, 18, 0};
		storage_setup(&s, ROUND(16));
		scsi(&s, 0, tur, 6, false, 0);
		scsi(&s, 1, cap10, 10, true, 8);
		scsi(&s, 2, sense6, 6, true, 192);
		scsi(&s, 3, reqsense, 6, true, 18);
		emit("storage-tur-capacity-sense", &s);
	}
	{
		static const uint8_t luns[12] = {0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 16},
				     fmtcap[10] = {0x23, 0, 0, 0, 0, 0, 0, 0, 12, 0},
				     read16[16] = {0x88, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 1},
				     sync10[10] = {0x35};
		storage_setup(&s, ROUND(4));
		scsi(&s, 0, luns, 12, true, 16);
		scsi(&s, 1, fmtcap, 10, true, 12);
		scsi(&s, 2, read16, 16, true, 512);
		scsi(&s, 3, sync10, 10, false, 0);
		emit("storage-luns-fmtcap-read16-sync", &s);
	}
	{
		static const uint8_t write12[12] = {0xaa, 0, 0, 0, 0, 2, 0, 0, 0, 1},
				     select6[6] = {0x15, 0x10, 0, 0, 4, 0},
				     verify10[10] = {0x2f, 0, 0, 0, 0, 2, 0, 0, 1, 0},
				     sense10[10] = {0x5a, 0, 0x08, 0, 0, 0, 0, 0, 40, 0};
		storage_setup(&s, ROUND(3));
		scsi(&s, 0, write12, 12, false, 512);
		scsi(&s, 1, select6, 6, false, 4);
		scsi(&s, 2, verify10, 10, false, 0);
		scsi(&s, 3, sense10, 10, true, 40);
		emit("storage-write12-select-verify-sense10", &s);
	}
	{
		/* READ(10) past the end (LBA out of range: CSW failed, then
		 * REQUEST SENSE); a host asking more than the device has (case 5,
		 * short then STALL); a bad CBW (stall both), reset recovery */
		static const uint8_t bad_read[10] = {0x28, 0, 0, 0, 0x10, 0, 0, 0, 1, 0},
				     reqsense[6] = {0x03, 0, 0, 0, 18, 0},
				     inquiry[6] = {0x12, 0, 0, 0, 36, 0};
		storage_setup(&s, ROUND(16) | F_UNLINK);
		scsi(&s, 0, bad_read, 10, true, 512);
		scsi(&s, 1, reqsense, 6, true, 18);
		scsi(&s, 2, inquiry, 6, true, 64); /* 36 of 64: short, STALL, CSW */
		struct usbif_urb_request *q = xfer(&s, USBIF_PIPE_TYPE_BULK, 3, 7, 2, false, 40, 30);
		q->seg[0].offset = 93; /* 30 bytes: not a CBW */
		xfer(&s, USBIF_PIPE_TYPE_BULK, 3, 7, 1, true, 41, 13); /* stalled */
		ctrl(&s, 3, 7, 0x21, 0xff, 0, 0, 0, 0);                /* Bulk-Only Mass Storage Reset */
		ctrl(&s, 3, 7, 0x02, USB_REQ_CLEAR_FEATURE, 0, 0x81, 0, 0);
		ctrl(&s, 3, 7, 0x02, USB_REQ_CLEAR_FEATURE, 0, 0x02, 0, 0);
		ctrl(&s, 3, 7, 0x82, USB_REQ_GET_STATUS, 0, 0x81, 2, 42);
		xfer(&s, USBIF_PIPE_TYPE_BULK, 3, 7, 1, true, 43, 13); /* waits: no CBW */
		emit("storage-errors-reset", &s);
	}

	/* tablet input completes waiting interrupt INs from another thread */
	memset(&s, 0, sizeof(s));
	s.flags = ROUND(3);
	s.unplug = 0x80;
	set_address(&s, 2, 9);
	set_config(&s, 2, 9, 1);
	ctrl(&s, 2, 9, 0xa1, 0x01, 0x0100, 0, 8, 10);          /* GET_REPORT input */
	xfer(&s, USBIF_PIPE_TYPE_INT, 2, 9, 1, true, 11, 8);   /* completed by the input */
	xfer(&s, USBIF_PIPE_TYPE_INT, 2, 9, 1, true, 12, 8);
	xfer(&s, USBIF_PIPE_TYPE_INT, 2, 9, 1, true, 13, 4);   /* short buffer */
	emit("tablet-input", &s);

	/* the rest of the SCSI commands */
	{
		static const uint8_t read6[6] = {0x08, 0, 0, 1, 1, 0},
				     write6[6] = {0x0a, 0, 0, 2, 1, 0},
				     cap16[16] = {0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32},
				     select10[10] = {0x55, 0x10, 0, 0, 0, 0, 0, 0, 8, 0};
		storage_setup(&s, ROUND(16));
		scsi(&s, 0, read6, 6, true, 512);
		scsi(&s, 1, write6, 6, false, 512);
		scsi(&s, 2, cap16, 16, true, 32);
		scsi(&s, 3, select10, 10, false, 8);
		emit("storage-rw6-cap16-select10", &s);
	}
	{
		static const uint8_t write16[16] = {0x8a, 0x08, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 2},
				     sync16[16] = {0x91, 0, 0, 0, 0, 0, 0, 0, 0, 0},
				     inq_vpd[6] = {0x12, 1, 0x83, 0, 64, 0},
				     prevent[6] = {0x1e, 0, 0, 0, 1, 0};
		storage_setup(&s, ROUND(8));
		scsi(&s, 0, write16, 16, false, 1024);
		scsi(&s, 1, sync16, 16, false, 0);
		scsi(&s, 2, inq_vpd, 6, true, 64);
		scsi(&s, 3, prevent, 6, false, 0);
		emit("storage-write16-sync16-vpd", &s);
	}

	/* unplug the tablet while an interrupt IN waits, plug it back at once,
	 * and enumerate the new one */
	memset(&s, 0, sizeof(s));
	s.flags = ROUND(4);
	s.unplug = UNPLUG(2, 0, true);
	set_address(&s, 2, 9);
	set_config(&s, 2, 9, 1);
	xfer(&s, USBIF_PIPE_TYPE_INT, 2, 9, 1, true, 11, 8);   /* waits, answered by the detach */
	xfer(&s, USBIF_PIPE_TYPE_INT, 2, 9, 1, true, 12, 8);   /* round 0 ends here */
	xfer(&s, USBIF_PIPE_TYPE_INT, 2, 9, 1, true, 13, 8);   /* old address: -ENODEV */
	set_address(&s, 2, 9);
	set_config(&s, 2, 9, 1);
	ctrl(&s, 2, 9, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0100, 0, 18, 14);
	emit("unplug-tablet-replug", &s);

	/* unplug storage with IN transfers parked, leave the port empty */
	memset(&s, 0, sizeof(s));
	s.flags = ROUND(4);
	s.unplug = UNPLUG(3, 0, false);
	set_address(&s, 3, 7);
	set_config(&s, 3, 7, 1);
	xfer(&s, USBIF_PIPE_TYPE_BULK, 3, 7, 1, true, 11, 512);
	xfer(&s, USBIF_PIPE_TYPE_BULK, 3, 7, 1, true, 12, 13);
	xfer(&s, USBIF_PIPE_TYPE_BULK, 3, 7, 2, false, 13, 31); /* after the detach: -ENODEV */
	ctrl(&s, 3, 0, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0100, 0, 18, 14); /* empty port */
	unlink_req(&s, pipe_of(3, 7, 1, true, USBIF_PIPE_TYPE_BULK), 2);
	emit("unplug-storage-parked", &s);

	/* ids as given, duplicates included; spurious kicks */
	configured_seed(&s, ROUND(8) | F_KEEP_IDS | F_ALWAYS_KICK, 2, 3);
	xfer(&s, USBIF_PIPE_TYPE_INT, 2, 3, 1, true, 10, 8);
	s.req[2].id = 7;
	ctrl(&s, 1, 0, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0100, 0, 18, 11);
	s.req[3].id = 7; /* in flight already: -EINVAL */
	unlink_req(&s, pipe_of(2, 3, 1, true, USBIF_PIPE_TYPE_INT), 7);
	s.req[4].id = 9;
	emit("keep-ids-dup", &s);

	/* malformed requests, each refused with its status */
	memset(&s, 0, sizeof(s));
	s.flags = ROUND(16) | F_ALWAYS_KICK;
	ctrl(&s, 1, 0, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0100, 0, 18, 10);
	s.req[0].nr_buffer_segs = 17;                          /* > 16 segments */
	ctrl(&s, 1, 0, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0100, 0, 18, 10);
	s.req[1].seg[0].offset = 4090;                         /* past the page */
	ctrl(&s, 5, 0, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0100, 0, 18, 10); /* port 5 of 4 */
	ctrl(&s, 4, 0, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0100, 0, 18, 10); /* empty port */
	ctrl(&s, 1, 0, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0100, 0, 18, 10);
	s.req[4].pipe |= 1u << 20;                             /* reserved bit */
	ctrl(&s, 1, 0, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0100, 0, 18, 1000); /* gref beyond 64 pages */
	ctrl(&s, 1, 0, 0x00, USB_REQ_GET_DESCRIPTOR, 0x0100, 0, 18, 10);
	s.req[6].pipe |= USBIF_PIPE_DIR;                       /* SETUP says OUT, pipe says IN */
	ctrl(&s, 1, 0, 0x80, USB_REQ_GET_STATUS, 0, 0, 2, 10); /* address 0, not GET_DESCRIPTOR */
	ctrl(&s, 1, 99, 0x80, USB_REQ_GET_STATUS, 0, 0, 2, 10); /* unknown address */
	unlink_req(&s, pipe_of(1, 0, 0, true, USBIF_PIPE_TYPE_CTRL), 3);
	s.req[9].nr_buffer_segs = 1;                           /* unlink with a segment */
	s.req[9].seg[0].length = 4;
	emit("malformed", &s);

	/* a hostile producer index at the end */
	memset(&s, 0, sizeof(s));
	s.flags = F_HOSTILE;
	ctrl(&s, 1, 0, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0100, 0, 18, 10);
	set_address(&s, 2, 4);
	set_config(&s, 2, 4, 1);
	xfer(&s, USBIF_PIPE_TYPE_INT, 2, 4, 1, true, 11, 8); /* pending when the ring breaks */
	emit("hostile-end", &s);

	if (list_req) {
		fclose(list_req);
		fclose(list_proto);
	}
	return 0;
}
