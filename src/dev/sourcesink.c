/* SPDX-License-Identifier: MIT */
/*
 * The source/sink test device, after Linux's f_sourcesink and usbtest: IN
 * endpoints produce a verifiable pattern, OUT endpoints check it.
 *   interface 0 alt 0: bulk IN 0x81, bulk OUT 0x02, interrupt IN 0x83
 *   interface 0 alt 1: the same plus isochronous IN 0x84 and OUT 0x05
 * Pattern 1 (default): byte k of a transfer is (k % wMaxPacketSize) % 63, as
 * usbtest checks it; pattern 0: zeros. Vendor requests 0x5b (OUT) and 0x5c
 * (IN) store and return up to 4 KiB, like gadget zero's control loopback.
 * Options: speed=full|high, pattern=0|1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emul.h"

#define SS_VENDOR 0x1209
#define SS_PRODUCT 0x7500
#define SS_PATTERN_BYTES 65536 /* the largest buffer 16 segments can carry */
#define SS_ISO_MAX 3072 /* 1024 bytes x 3 transactions per microframe */
#define SS_REQ_WRITE 0x5b
#define SS_REQ_READ 0x5c

struct sourcesink {
	struct emul_dev e;
	uint8_t dev_desc[18];
	uint8_t qualifier[10];
	uint8_t config[9 + 9 + 3 * 7 + 9 + 5 * 7];
	int pattern;
	uint16_t bulk_mps;
	uint8_t *pat;            /* SS_PATTERN_BYTES of the pattern for bulk_mps */
	uint8_t *iso_pat;        /* pattern restarted for each iso packet */
	uint8_t ctrl_buf[EMUL_CTRL_MAX];
	uint16_t ctrl_len;
};

static const char *const ss_strings[] = {"pvusb", "pvusb Source/Sink", "1"};

static uint8_t *put_ep(uint8_t *p, uint8_t addr, uint8_t attr, uint16_t mps, uint8_t interval)
{
	const uint8_t ep[7] = {7, 5, addr, attr, (uint8_t)mps, (uint8_t)(mps >> 8), interval};
	memcpy(p, ep, 7);
	return p + 7;
}

static uint8_t *put_intf(uint8_t *p, uint8_t alt, uint8_t neps)
{
	const uint8_t intf[9] = {9, 4, 0, alt, neps, 0xff, 0, 0, 0};
	memcpy(p, intf, 9);
	return p + 9;
}

static void build_descriptors(struct sourcesink *ss, bool high)
{
	const uint8_t dev[18] = {18, 1, 0x00, 0x02, 0, 0, 0, 64, SS_VENDOR & 0xff, SS_VENDOR >> 8,
				 SS_PRODUCT & 0xff, SS_PRODUCT >> 8, 0x00, 0x01, 1, 2, 3, 1};
	memcpy(ss->dev_desc, dev, sizeof(dev));
	const uint8_t qual[10] = {10, 6, 0x00, 0x02, 0, 0, 0, 64, 1, 0};
	memcpy(ss->qualifier, qual, sizeof(qual));

	uint16_t bulk = high ? 512 : 64, iso = high ? 1024 : 1023;
	uint8_t int_interval = high ? 4 : 1, iso_interval = 1;
	uint8_t *p = ss->config + 9;
	p = put_intf(p, 0, 3);
	p = put_ep(p, 0x81, 2, bulk, 0);
	p = put_ep(p, 0x02, 2, bulk, 0);
	p = put_ep(p, 0x83, 3, 64, int_interval);
	p = put_intf(p, 1, 5);
	p = put_ep(p, 0x81, 2, bulk, 0);
	p = put_ep(p, 0x02, 2, bulk, 0);
	p = put_ep(p, 0x83, 3, 64, int_interval);
	p = put_ep(p, 0x84, 1 | 4, iso, iso_interval); /* isochronous, asynchronous */
	p = put_ep(p, 0x05, 1 | 4, iso, iso_interval);
	uint16_t total = (uint16_t)(p - ss->config);
	const uint8_t cfg[9] = {9, 2, (uint8_t)total, (uint8_t)(total >> 8), 1, 1, 0, 0xc0, 50};
	memcpy(ss->config, cfg, sizeof(cfg));
	ss->bulk_mps = bulk;
}

static void fill_pattern(uint8_t *buf, size_t n, uint16_t mps, int pattern)
{
	for (size_t k = 0; k < n; k++)
		buf[k] = pattern ? (uint8_t)((k % mps) % 63) : 0;
}

static struct sourcesink *to_ss(struct emul_dev *e) { return e->cls_priv; }

/* ---- data endpoints ---- */

static uint32_t source(struct pvusb_xfer *x, const uint8_t *pat)
{
	if (x->contig) {
		memcpy(x->contig, pat, x->length);
		return x->length;
	}
	return (uint32_t)pvusb_xfer_copy_to(x, 0, pat, x->length);
}

static bool sink_ok(const struct pvusb_xfer *x, const uint8_t *pat)
{
	if (x->contig)
		return memcmp(x->contig, pat, x->length) == 0;
	size_t off = 0;
	for (unsigned i = 0; i < x->niov; i++) {
		if (memcmp(x->iov[i].base, pat + off, x->iov[i].len) != 0)
			return false;
		off += x->iov[i].len;
	}
	return true;
}

/* Isochronous: each packet carries the pattern from its own start. */
static void iso_transfer(struct sourcesink *ss, struct pvusb_xfer *x)
{
	uint32_t total = 0;
	int32_t errors = 0;
	for (uint32_t k = 0; k < x->npackets; k++) {
		struct usbif_iso_desc *d = &x->iso[k];
		if (x->in) {
			uint32_t n = d->length < SS_ISO_MAX ? d->length : SS_ISO_MAX;
			d->actual_length = (uint32_t)pvusb_xfer_copy_to(x, d->offset, ss->iso_pat, n);
			d->status = 0;
		} else {
			uint8_t pkt[SS_ISO_MAX];
			uint32_t n = d->length < sizeof(pkt) ? d->length : (uint32_t)sizeof(pkt);
			pvusb_xfer_copy_from(x, d->offset, pkt, n);
			bool ok = n == d->length && memcmp(pkt, ss->iso_pat, n) == 0;
			d->actual_length = n;
			d->status = ok ? 0 : USBIF_STATUS_IOERROR;
			errors += !ok;
		}
		total += d->actual_length;
	}
	x->error_count = errors;
	x->rsp_start_frame = (uint16_t)emul_frame_number();
	emul_complete(&ss->e, x, 0, total);
}

static int ss_transfer(struct emul_dev *e, struct pvusb_xfer *x)
{
	struct sourcesink *ss = to_ss(e);
	if (x->type == USBIF_PIPE_TYPE_ISOC) {
		iso_transfer(ss, x);
		return 0;
	}
	if (x->in) {
		emul_complete(e, x, 0, source(x, ss->pat));
		return 0;
	}
	emul_complete(e, x, sink_ok(x, ss->pat) ? 0 : USBIF_STATUS_IOERROR, x->length);
	return 0;
}

/* ---- vendor control loopback ---- */

static int ss_control(struct emul_dev *e, const uint8_t setup[8], uint8_t *data, uint16_t len)
{
	struct sourcesink *ss = to_ss(e);
	if ((setup[0] & USB_TYPE_MASK) != 0x40) /* vendor */
		return USBIF_STATUS_STALL;
	if (setup[1] == SS_REQ_WRITE && !(setup[0] & USB_DIR_IN)) {
		memcpy(ss->ctrl_buf, data, len);
		ss->ctrl_len = len;
		return 0;
	}
	if (setup[1] == SS_REQ_READ && (setup[0] & USB_DIR_IN)) {
		uint16_t n = len < ss->ctrl_len ? len : ss->ctrl_len;
		memcpy(data, ss->ctrl_buf, n);
		return n;
	}
	return USBIF_STATUS_STALL;
}

static void ss_destroy(struct emul_dev *e)
{
	struct sourcesink *ss = to_ss(e);
	free(ss->pat);
	free(ss->iso_pat);
}

static const struct emul_class_ops ss_ops = {
	.control = ss_control,
	.transfer = ss_transfer,
	.destroy = ss_destroy,
};

static int parse_opts(const char *opts, bool *high, int *pattern, char *err, size_t errlen)
{
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", opts ? opts : "");
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!strcmp(tok, "speed=high"))
			*high = true;
		else if (!strcmp(tok, "speed=full"))
			*high = false;
		else if (!strcmp(tok, "pattern=0") || !strcmp(tok, "pattern=1"))
			*pattern = tok[8] - '0';
		else {
			snprintf(err, errlen, "sourcesink: unknown option '%s' (expected speed=full|high, "
				 "pattern=0|1)", tok);
			return -EINVAL;
		}
	}
	return 0;
}

int emul_sourcesink_open(const char *opts, struct pvusb_dev **out, char *err, size_t errlen)
{
	bool high = true;
	int pattern = 1;
	int rc = parse_opts(opts, &high, &pattern, err, errlen);
	if (rc < 0)
		return rc;
	struct sourcesink *ss = calloc(1, sizeof(*ss));
	if (!ss)
		return -ENOMEM;
	build_descriptors(ss, high);
	ss->pattern = pattern;
	ss->pat = malloc(SS_PATTERN_BYTES);
	ss->iso_pat = malloc(SS_ISO_MAX);
	if (!ss->pat || !ss->iso_pat) {
		ss_destroy(&ss->e);
		free(ss);
		return -ENOMEM;
	}
	fill_pattern(ss->pat, SS_PATTERN_BYTES, ss->bulk_mps, pattern);
	fill_pattern(ss->iso_pat, SS_ISO_MAX, high ? 1024 : 1023, pattern);
	emul_init(&ss->e, &ss_ops, ss->dev_desc, ss->config, ss_strings, 3);
	ss->e.qualifier = high ? ss->qualifier : NULL;
	ss->e.cls_priv = ss;
	ss->e.base.speed = high ? USBIF_SPEED_HIGH : USBIF_SPEED_FULL;
	*out = &ss->e.base;
	return 0;
}
