/* SPDX-License-Identifier: MIT */
/*
 * The emulated tablet and keyboard, driven through emul_dev_ops as the core
 * drives them, with hand-built transfers. Links only the device code, so the
 * core's completion and buffer helpers are stood in for here.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dev/emul.h"

#include "check.h"

/* ---- stand-ins for the core (src/core/hc.c) ---- */

#define LOG_MAX 256
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pvusb_xfer *completed[LOG_MAX];
static unsigned ncompleted;

void pvusb_xfer_complete(struct pvusb_xfer *x)
{
	pthread_mutex_lock(&log_lock);
	if (ncompleted < LOG_MAX)
		completed[ncompleted] = x;
	ncompleted++;
	pthread_mutex_unlock(&log_lock);
}

size_t pvusb_xfer_copy_to(struct pvusb_xfer *x, size_t off, const void *src, size_t n)
{
	const uint8_t *p = src;
	size_t done = 0;
	for (unsigned i = 0; i < x->niov && done < n; i++) {
		size_t len = x->iov[i].len;
		if (off >= len) {
			off -= len;
			continue;
		}
		size_t k = len - off < n - done ? len - off : n - done;
		memcpy(x->iov[i].base + off, p + done, k);
		done += k;
		off = 0;
	}
	return done;
}

size_t pvusb_xfer_copy_from(const struct pvusb_xfer *x, size_t off, void *dst, size_t n)
{
	uint8_t *p = dst;
	size_t done = 0;
	for (unsigned i = 0; i < x->niov && done < n; i++) {
		size_t len = x->iov[i].len;
		if (off >= len) {
			off -= len;
			continue;
		}
		size_t k = len - off < n - done ? len - off : n - done;
		memcpy(p + done, x->iov[i].base + off, k);
		done += k;
		off = 0;
	}
	return done;
}

/* How many times `x` completed since the last clear_log(). */
static unsigned times_completed(const struct pvusb_xfer *x)
{
	unsigned n = 0;
	pthread_mutex_lock(&log_lock);
	for (unsigned i = 0; i < ncompleted && i < LOG_MAX; i++)
		n += completed[i] == x;
	pthread_mutex_unlock(&log_lock);
	return n;
}

static void clear_log(void)
{
	pthread_mutex_lock(&log_lock);
	ncompleted = 0;
	pthread_mutex_unlock(&log_lock);
}

/* ---- building transfers ---- */

struct xbuf {
	struct pvusb_xfer x;
	uint8_t buf[512];
};

static void ctrl_init(struct xbuf *t, struct pvusb_dev *d, uint8_t rt, uint8_t req, uint16_t value,
		      uint16_t index, uint16_t length)
{
	memset(t, 0, sizeof(*t));
	memset(t->buf, 0xee, sizeof(t->buf)); /* so untouched bytes show */
	uint8_t setup[8] = {rt, req, value & 0xff, value >> 8, index & 0xff, index >> 8,
			    length & 0xff, length >> 8};
	memcpy(t->x.setup, setup, 8);
	t->x.dev = d;
	t->x.type = USBIF_PIPE_TYPE_CTRL;
	t->x.endpoint = 0;
	t->x.in = rt & USB_DIR_IN;
	t->x.length = length;
	t->x.contig = t->buf;
	t->x.niov = 1;
	t->x.iov[0] = (struct pvusb_iov){t->buf, length};
}

/* A control transfer, run to completion. Returns the status. */
static int32_t control(struct pvusb_dev *d, struct xbuf *t, uint8_t rt, uint8_t req, uint16_t value,
		       uint16_t index, uint16_t length)
{
	ctrl_init(t, d, rt, req, value, index, length);
	clear_log();
	int rc = emul_dev_ops.submit(d, &t->x);
	CHECK_EQ(rc, 0);
	CHECK_EQ(times_completed(&t->x), 1);
	return t->x.status;
}

static int32_t control_out(struct pvusb_dev *d, uint8_t req, uint16_t value, const uint8_t *data,
			   uint16_t length)
{
	struct xbuf t;
	ctrl_init(&t, d, USB_TYPE_CLASS | USB_RECIP_INTERFACE, req, value, 0, length);
	memcpy(t.buf, data, length);
	clear_log();
	CHECK_EQ(emul_dev_ops.submit(d, &t.x), 0);
	CHECK_EQ(times_completed(&t.x), 1);
	return t.x.status;
}

/* Interrupt IN on 0x81, its buffer split in two runs so the device must go
 * through pvusb_xfer_copy_to rather than `contig`. */
static void intr_init(struct xbuf *t, struct pvusb_dev *d, uint32_t length)
{
	memset(t, 0, sizeof(*t));
	memset(t->buf, 0xee, sizeof(t->buf));
	t->x.dev = d;
	t->x.type = USBIF_PIPE_TYPE_INT;
	t->x.endpoint = 1;
	t->x.in = true;
	t->x.length = length;
	t->x.interval = 10;
	t->x.contig = NULL;
	t->x.niov = 2;
	t->x.iov[0] = (struct pvusb_iov){t->buf, length / 2};
	t->x.iov[1] = (struct pvusb_iov){t->buf + 256, length - length / 2};
}

/* Byte i of an interrupt transfer's data, across the two runs. */
static uint8_t intr_byte(const struct xbuf *t, unsigned i)
{
	uint8_t b = 0;
	pvusb_xfer_copy_from(&t->x, i, &b, 1);
	return b;
}

/* ---- checks shared by both devices ---- */

static void check_device_desc(struct pvusb_dev *d, uint16_t product)
{
	struct xbuf t;
	CHECK_EQ(control(d, &t, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0100, 0, 64), 0);
	CHECK_EQ(t.x.actual_length, 18);
	CHECK_EQ(t.buf[0], 18);
	CHECK_EQ(t.buf[1], 1);
	CHECK_EQ(t.buf[4], 0);  /* class in the interface */
	CHECK_EQ(t.buf[7], 64); /* bMaxPacketSize0 */
	CHECK_EQ(usbif_le16(t.buf + 8), 0x1209);
	CHECK_EQ(usbif_le16(t.buf + 10), product);
	CHECK_EQ(t.buf[14], 1); /* iManufacturer */
	CHECK_EQ(t.buf[15], 2); /* iProduct */
	CHECK_EQ(t.buf[16], 3); /* iSerialNumber */
	CHECK_EQ(t.buf[17], 1); /* one configuration */
}

static void check_string(struct pvusb_dev *d, uint8_t index, const char *want)
{
	struct xbuf t;
	CHECK_EQ(control(d, &t, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0300 | index, 0x0409, 255), 0);
	size_t n = strlen(want);
	CHECK_EQ(t.x.actual_length, 2 + 2 * n);
	CHECK_EQ(t.buf[0], 2 + 2 * n);
	CHECK_EQ(t.buf[1], 3);
	bool same = true;
	for (size_t i = 0; i < n; i++)
		same = same && t.buf[2 + 2 * i] == (uint8_t)want[i] && t.buf[3 + 2 * i] == 0;
	CHECK(same);
}

/* Returns wDescriptorLength of the report descriptor from the config. */
static uint16_t check_config_desc(struct pvusb_dev *d, uint8_t subclass, uint8_t protocol)
{
	struct xbuf t;
	/* first the header alone, as every host does */
	CHECK_EQ(control(d, &t, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0200, 0, 9), 0);
	CHECK_EQ(t.x.actual_length, 9);
	CHECK_EQ(usbif_le16(t.buf + 2), 34);
	CHECK_EQ(t.buf[10], 0xee); /* nothing past wLength */

	CHECK_EQ(control(d, &t, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0200, 0, 255), 0);
	CHECK_EQ(t.x.actual_length, 34);
	const uint8_t *c = t.buf, *i = c + 9, *h = c + 18, *ep = c + 27;
	CHECK_EQ(c[4], 1);    /* bNumInterfaces */
	CHECK_EQ(c[5], 1);    /* bConfigurationValue */
	CHECK(c[7] & 0x80);   /* bus powered, bit 7 must be set */
	CHECK_EQ(i[0], 9);
	CHECK_EQ(i[1], 4);
	CHECK_EQ(i[2], 0);    /* bInterfaceNumber */
	CHECK_EQ(i[4], 1);    /* bNumEndpoints */
	CHECK_EQ(i[5], 3);    /* HID */
	CHECK_EQ(i[6], subclass);
	CHECK_EQ(i[7], protocol);
	CHECK_EQ(h[0], 9);
	CHECK_EQ(h[1], 0x21);
	CHECK_EQ(usbif_le16(h + 2), 0x0111);
	CHECK_EQ(h[5], 1);    /* bNumDescriptors */
	CHECK_EQ(h[6], 0x22); /* report */
	CHECK_EQ(ep[0], 7);
	CHECK_EQ(ep[1], 5);
	CHECK_EQ(ep[2], 0x81);
	CHECK_EQ(ep[3], 3);   /* interrupt */
	CHECK_EQ(usbif_le16(ep + 4), 8);
	CHECK_EQ(ep[6], 10);
	uint16_t report_len = usbif_le16(h + 7);
	uint8_t hid_in_config[9];
	memcpy(hid_in_config, h, 9);

	/* the HID descriptor alone, from the interface, is the same bytes */
	CHECK_EQ(control(d, &t, 0x81, USB_REQ_GET_DESCRIPTOR, 0x2100, 0, 255), 0);
	CHECK_EQ(t.x.actual_length, 9);
	CHECK(memcmp(t.buf, hid_in_config, 9) == 0);
	return report_len;
}

/* What a host's parser makes of a report descriptor (HID 1.11 6.2.2):
 * report sizes in bits, and whether the collections balance. */
struct report_layout {
	unsigned input_bits, output_bits;
	int depth;
	bool well_formed;
};

static struct report_layout parse_report_desc(const uint8_t *p, size_t len)
{
	struct report_layout l = {0, 0, 0, true};
	uint32_t size = 0, count = 0;
	size_t i = 0;
	while (i < len) {
		uint8_t prefix = p[i];
		size_t n = (prefix & 3) == 3 ? 4 : (prefix & 3);
		if (prefix == 0xfe || i + 1 + n > len) { /* long items: none expected */
			l.well_formed = false;
			break;
		}
		uint32_t v = 0;
		for (size_t k = 0; k < n; k++)
			v |= (uint32_t)p[i + 1 + k] << (8 * k);
		switch (prefix & 0xfc) {
		case 0x74: size = v; break;                          /* Report Size */
		case 0x94: count = v; break;                         /* Report Count */
		case 0x80: l.input_bits += size * count; break;      /* Input */
		case 0x90: l.output_bits += size * count; break;     /* Output */
		case 0xa0: l.depth++; break;                         /* Collection */
		case 0xc0: l.well_formed = l.well_formed && l.depth-- > 0; break;
		}
		i += 1 + n;
	}
	l.well_formed = l.well_formed && l.depth == 0;
	return l;
}

/* Fetch the report descriptor and check its length, its report sizes as a
 * parser sees them, and a few landmarks. */
static void check_report_desc(struct pvusb_dev *d, uint16_t want_len, uint8_t usage,
			      unsigned input_bits, unsigned output_bits)
{
	struct xbuf t;
	CHECK_EQ(control(d, &t, 0x81, USB_REQ_GET_DESCRIPTOR, 0x2200, 0, 255), 0);
	CHECK_EQ(t.x.actual_length, want_len);
	CHECK_EQ(t.buf[0], 0x05); /* Usage Page (Generic Desktop) */
	CHECK_EQ(t.buf[1], 0x01);
	CHECK_EQ(t.buf[2], 0x09);
	CHECK_EQ(t.buf[3], usage);
	CHECK_EQ(t.buf[want_len - 1], 0xc0); /* End Collection */
	struct report_layout l = parse_report_desc(t.buf, t.x.actual_length);
	CHECK(l.well_formed);
	CHECK_EQ(l.input_bits, input_bits);
	CHECK_EQ(l.output_bits, output_bits);

	/* truncated to wLength, as Linux's first short read does */
	CHECK_EQ(control(d, &t, 0x81, USB_REQ_GET_DESCRIPTOR, 0x2200, 0, 4), 0);
	CHECK_EQ(t.x.actual_length, 4);
	CHECK_EQ(t.buf[4], 0xee);
	/* the wrong interface, and a device-recipient request, stall */
	CHECK_EQ(control(d, &t, 0x81, USB_REQ_GET_DESCRIPTOR, 0x2200, 1, 255), USBIF_STATUS_STALL);
	CHECK_EQ(control(d, &t, 0x80, USB_REQ_GET_DESCRIPTOR, 0x2200, 0, 255), USBIF_STATUS_STALL);
	CHECK_EQ(control(d, &t, 0x81, USB_REQ_GET_DESCRIPTOR, 0x2300, 0, 255), USBIF_STATUS_STALL);
}

static void set_configuration(struct pvusb_dev *d, uint8_t value)
{
	struct xbuf t;
	CHECK_EQ(control(d, &t, 0x00, USB_REQ_SET_CONFIGURATION, value, 0, 0), 0);
	CHECK_EQ(control(d, &t, 0x80, USB_REQ_GET_CONFIGURATION, 0, 0, 1), 0);
	CHECK_EQ(t.x.actual_length, 1);
	CHECK_EQ(t.buf[0], value);
}

/* ---- tablet ---- */

static void check_tablet_report(const struct xbuf *t, uint8_t buttons, uint16_t x, uint16_t y,
				int8_t wheel)
{
	CHECK_EQ(t->x.status, 0);
	CHECK_EQ(t->x.actual_length, 6);
	CHECK_EQ(intr_byte(t, 0), buttons);
	CHECK_EQ(intr_byte(t, 1) | intr_byte(t, 2) << 8, x);
	CHECK_EQ(intr_byte(t, 3) | intr_byte(t, 4) << 8, y);
	CHECK_EQ((int8_t)intr_byte(t, 5), wheel);
}

struct input_job {
	struct pvusb_dev *d;
	uint16_t x, y;
};

static void *input_thread(void *arg)
{
	struct input_job *j = arg;
	emul_tablet_input(j->d, j->x, j->y, 0, 0);
	return NULL;
}

static void test_tablet_interrupt(struct pvusb_dev *d)
{
	struct xbuf a, b, c;

	/* nothing to report: the transfer waits */
	intr_init(&a, d, 8);
	clear_log();
	CHECK_EQ(emul_dev_ops.submit(d, &a.x), 0);
	CHECK_EQ(times_completed(&a.x), 0);
	CHECK_EQ(emul_tablet_input(d, 1000, 2000, 0x01, -1), 0);
	CHECK_EQ(times_completed(&a.x), 1);
	check_tablet_report(&a, 0x01, 1000, 2000, -1);

	/* a cancelled transfer ends with CONNRESET; the next one still waits */
	intr_init(&a, d, 8);
	intr_init(&b, d, 8);
	clear_log();
	CHECK_EQ(emul_dev_ops.submit(d, &a.x), 0);
	CHECK_EQ(emul_dev_ops.submit(d, &b.x), 0);
	emul_dev_ops.cancel(d, &a.x);
	CHECK_EQ(times_completed(&a.x), 1);
	CHECK_EQ(a.x.status, USBIF_STATUS_CONNRESET);
	CHECK_EQ(a.x.actual_length, 0);
	CHECK_EQ(times_completed(&b.x), 0);
	/* the wheel was a delta: reported once, zero now */
	CHECK_EQ(emul_tablet_input(d, 1001, 2000, 0x01, 0), 0);
	CHECK_EQ(times_completed(&b.x), 1);
	check_tablet_report(&b, 0x01, 1001, 2000, 0);
	/* cancelling a finished transfer is harmless */
	emul_dev_ops.cancel(d, &a.x);
	emul_dev_ops.cancel(d, &b.x);
	CHECK_EQ(times_completed(&a.x), 1);
	CHECK_EQ(times_completed(&b.x), 1);

	/* input with no transfer waiting is kept and goes out at once; wheel
	 * deltas add up, within -127..127, and positions stop at the edge */
	CHECK_EQ(emul_tablet_input(d, 40000, 5, 0x0f, 100), 0);
	CHECK_EQ(emul_tablet_input(d, 40000, 6, 0x0f, 100), 0);
	intr_init(&a, d, 8);
	clear_log();
	CHECK_EQ(emul_dev_ops.submit(d, &a.x), 0);
	CHECK_EQ(times_completed(&a.x), 1);
	check_tablet_report(&a, 0x07, 32767, 6, 127);

	/* the same state again is no change: nothing to report */
	CHECK_EQ(emul_tablet_input(d, 40000, 6, 0x07, 0), 0);
	intr_init(&a, d, 8);
	clear_log();
	CHECK_EQ(emul_dev_ops.submit(d, &a.x), 0);
	CHECK_EQ(times_completed(&a.x), 0);

	/* input from another thread completes the waiting transfer */
	struct input_job job = {d, 123, 456};
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, input_thread, &job), 0);
	pthread_join(th, NULL);
	CHECK_EQ(times_completed(&a.x), 1);
	check_tablet_report(&a, 0, 123, 456, 0);

	/* a buffer shorter than the report gets what fits */
	intr_init(&c, d, 4);
	clear_log();
	CHECK_EQ(emul_dev_ops.submit(d, &c.x), 0);
	CHECK_EQ(emul_tablet_input(d, 0x1234, 0x0567, 0x02, 0), 0);
	CHECK_EQ(times_completed(&c.x), 1);
	CHECK_EQ(c.x.status, 0);
	CHECK_EQ(c.x.actual_length, 4);
	CHECK_EQ(intr_byte(&c, 0), 0x02);
	CHECK_EQ(intr_byte(&c, 1), 0x34);
	CHECK_EQ(intr_byte(&c, 3), 0x67);

	/* the queue holds what a ring can hold, in order, and no more */
	struct xbuf q[USB_URB_RING_SIZE + 1];
	clear_log();
	for (unsigned i = 0; i < USB_URB_RING_SIZE; i++) {
		intr_init(&q[i], d, 8);
		CHECK_EQ(emul_dev_ops.submit(d, &q[i].x), 0);
	}
	intr_init(&q[USB_URB_RING_SIZE], d, 8);
	CHECK(emul_dev_ops.submit(d, &q[USB_URB_RING_SIZE].x) < 0);
	CHECK_EQ(ncompleted, 0);
	CHECK_EQ(emul_tablet_input(d, 7, 7, 0, 0), 0);
	CHECK_EQ(times_completed(&q[0].x), 1);
	CHECK_EQ(times_completed(&q[1].x), 0);
	check_tablet_report(&q[0], 0, 7, 7, 0);
	for (unsigned i = 1; i < USB_URB_RING_SIZE; i++)
		emul_dev_ops.cancel(d, &q[i].x);
	CHECK_EQ(ncompleted, USB_URB_RING_SIZE);
	bool all_reset = true;
	for (unsigned i = 1; i < USB_URB_RING_SIZE; i++)
		all_reset = all_reset && q[i].x.status == USBIF_STATUS_CONNRESET;
	CHECK(all_reset);

	/* a guest that unconfigures with a transfer waiting gets it back */
	intr_init(&a, d, 8);
	clear_log();
	CHECK_EQ(emul_dev_ops.submit(d, &a.x), 0);
	struct xbuf t;
	CHECK_EQ(control(d, &t, 0x00, USB_REQ_SET_CONFIGURATION, 0, 0, 0), 0);
	CHECK_EQ(times_completed(&a.x), 1);
	CHECK_EQ(a.x.status, USBIF_STATUS_SHUTDOWN);
	set_configuration(d, 1);
}

static void test_tablet_class_requests(struct pvusb_dev *d)
{
	struct xbuf t;
	/* GET_REPORT(input) is the current state */
	CHECK_EQ(emul_tablet_input(d, 0x0102, 0x0304, 0x05, 0), 0);
	CHECK_EQ(control(d, &t, 0xa1, 0x01, 0x0100, 0, 8), 0);
	CHECK_EQ(t.x.actual_length, 6);
	const uint8_t want[6] = {0x05, 0x02, 0x01, 0x04, 0x03, 0x00};
	CHECK(memcmp(t.buf, want, 6) == 0);
	/* GET_REPORT did not consume it: an interrupt IN still gets it */
	struct xbuf a;
	intr_init(&a, d, 8);
	clear_log();
	CHECK_EQ(emul_dev_ops.submit(d, &a.x), 0);
	CHECK_EQ(times_completed(&a.x), 1);
	check_tablet_report(&a, 0x05, 0x0102, 0x0304, 0);

	/* idle: default 0 for a pointer, then what was set */
	CHECK_EQ(control(d, &t, 0xa1, 0x02, 0, 0, 1), 0);
	CHECK_EQ(t.x.actual_length, 1);
	CHECK_EQ(t.buf[0], 0);
	CHECK_EQ(control(d, &t, 0x21, 0x0a, 0x2500, 0, 0), 0);
	CHECK_EQ(control(d, &t, 0xa1, 0x02, 0, 0, 1), 0);
	CHECK_EQ(t.buf[0], 0x25);
	CHECK_EQ(control(d, &t, 0x21, 0x0a, 0x0001, 0, 0), USBIF_STATUS_STALL); /* report ID 1 */

	/* no boot protocol, no output report, no feature report */
	CHECK_EQ(control(d, &t, 0xa1, 0x03, 0, 0, 1), USBIF_STATUS_STALL);
	CHECK_EQ(control(d, &t, 0x21, 0x0b, 0, 0, 0), USBIF_STATUS_STALL);
	uint8_t one = 1;
	CHECK_EQ(control_out(d, 0x09, 0x0200, &one, 1), USBIF_STATUS_STALL);
	CHECK_EQ(control(d, &t, 0xa1, 0x01, 0x0300, 0, 8), USBIF_STATUS_STALL);
	/* an unknown request, and a class request to interface 1 */
	CHECK_EQ(control(d, &t, 0xa1, 0x55, 0, 0, 8), USBIF_STATUS_STALL);
	CHECK_EQ(control(d, &t, 0xa1, 0x01, 0x0100, 1, 8), USBIF_STATUS_STALL);
	/* a vendor request */
	CHECK_EQ(control(d, &t, 0xc1, 0x01, 0, 0, 8), USBIF_STATUS_STALL);
}

static void test_tablet(void)
{
	struct pvusb_dev *d = NULL;
	char err[128] = "";

	CHECK_EQ(emul_tablet_open("speed=high", &d, err, sizeof(err)), -EINVAL);
	CHECK(strcmp(err, "tablet takes no options") == 0);
	CHECK(d == NULL);
	CHECK_EQ(emul_tablet_open("", &d, err, sizeof(err)), 0);
	emul_dev_ops.close(d);
	d = NULL;
	CHECK_EQ(emul_tablet_open(NULL, &d, err, sizeof(err)), 0);
	if (!d)
		return;

	CHECK(d->ops == &emul_dev_ops);
	CHECK_EQ(d->speed, USBIF_SPEED_FULL);
	CHECK_EQ(d->vendor, 0x1209);
	CHECK_EQ(d->product, 0x7501);
	CHECK_EQ(d->dev_class, 0);
	CHECK(strcmp(d->name, "tablet") == 0);
	CHECK(strcmp(d->desc, "pvusb HID Tablet") == 0);
	uint8_t keys[6] = {4};
	CHECK_EQ(emul_keyboard_input(d, 0, keys), -EINVAL);
	CHECK_EQ(emul_tablet_input(NULL, 0, 0, 0, 0), -EINVAL);

	check_device_desc(d, 0x7501);
	check_string(d, 1, "pvusb");
	check_string(d, 2, "pvusb HID Tablet");
	check_string(d, 3, "1");
	uint16_t report_len = check_config_desc(d, 0, 0);
	check_report_desc(d, report_len, 0x02, 6 * 8, 0);
	/* X and Y: 0..32767, 16 bits, absolute */
	struct xbuf t;
	CHECK_EQ(control(d, &t, 0x81, USB_REQ_GET_DESCRIPTOR, 0x2200, 0, 255), 0);
	const uint8_t xy[] = {0x09, 0x30, 0x09, 0x31, 0x15, 0x00, 0x26, 0xff, 0x7f};
	CHECK(memmem(t.buf, t.x.actual_length, xy, sizeof(xy)) != NULL);

	/* no interrupt endpoint until configured */
	struct xbuf a;
	intr_init(&a, d, 8);
	clear_log();
	int rc = emul_dev_ops.submit(d, &a.x);
	CHECK(rc < 0 || (times_completed(&a.x) == 1 && a.x.status != 0));

	set_configuration(d, 1);
	test_tablet_interrupt(d);
	test_tablet_class_requests(d);

	/* reset: unconfigured, endpoint gone, idle back to default */
	CHECK_EQ(emul_dev_ops.reset(d), 0);
	intr_init(&a, d, 8);
	clear_log();
	CHECK(emul_dev_ops.submit(d, &a.x) < 0);
	set_configuration(d, 1);
	CHECK_EQ(control(d, &t, 0xa1, 0x02, 0, 0, 1), 0);
	CHECK_EQ(t.buf[0], 0);

	emul_dev_ops.close(d);
}

/* ---- keyboard ---- */

static void check_keyboard_report(const struct xbuf *t, const uint8_t want[8])
{
	CHECK_EQ(t->x.status, 0);
	CHECK_EQ(t->x.actual_length, 8);
	bool same = true;
	for (unsigned i = 0; i < 8; i++)
		same = same && intr_byte(t, i) == want[i];
	CHECK(same);
}

static void test_keyboard_requests(struct pvusb_dev *d)
{
	struct xbuf t;
	/* LEDs: SET_REPORT(output) stores them, GET_REPORT(output) reads back */
	uint8_t leds = 0xff;
	CHECK_EQ(control_out(d, 0x09, 0x0200, &leds, 1), 0);
	CHECK_EQ(control(d, &t, 0xa1, 0x01, 0x0200, 0, 1), 0);
	CHECK_EQ(t.x.actual_length, 1);
	CHECK_EQ(t.buf[0], 0x1f); /* five LEDs, three pad bits */
	leds = 0x02;              /* Caps Lock */
	CHECK_EQ(control_out(d, 0x09, 0x0200, &leds, 1), 0);
	CHECK_EQ(control(d, &t, 0xa1, 0x01, 0x0200, 0, 1), 0);
	CHECK_EQ(t.buf[0], 0x02);
	CHECK_EQ(control_out(d, 0x09, 0x0100, &leds, 1), USBIF_STATUS_STALL); /* input */
	CHECK_EQ(control_out(d, 0x09, 0x0200, &leds, 0), USBIF_STATUS_STALL); /* no data */

	/* protocol: report by default, boot when asked, nothing else */
	CHECK_EQ(control(d, &t, 0xa1, 0x03, 0, 0, 1), 0);
	CHECK_EQ(t.x.actual_length, 1);
	CHECK_EQ(t.buf[0], 1);
	CHECK_EQ(control(d, &t, 0x21, 0x0b, 0, 0, 0), 0);
	CHECK_EQ(control(d, &t, 0xa1, 0x03, 0, 0, 1), 0);
	CHECK_EQ(t.buf[0], 0);
	CHECK_EQ(control(d, &t, 0x21, 0x0b, 2, 0, 0), USBIF_STATUS_STALL);

	/* idle: 500 ms by default for a keyboard, then what was set */
	CHECK_EQ(control(d, &t, 0xa1, 0x02, 0, 0, 1), 0);
	CHECK_EQ(t.buf[0], 125);
	CHECK_EQ(control(d, &t, 0x21, 0x0a, 0, 0, 0), 0);
	CHECK_EQ(control(d, &t, 0xa1, 0x02, 0, 0, 1), 0);
	CHECK_EQ(t.buf[0], 0);
}

static void test_keyboard(void)
{
	struct pvusb_dev *d = NULL;
	char err[128] = "";

	CHECK_EQ(emul_keyboard_open("x", &d, err, sizeof(err)), -EINVAL);
	CHECK(strcmp(err, "keyboard takes no options") == 0);
	CHECK_EQ(emul_keyboard_open(NULL, &d, err, sizeof(err)), 0);
	if (!d)
		return;
	CHECK_EQ(d->vendor, 0x1209);
	CHECK_EQ(d->product, 0x7502);
	CHECK_EQ(d->speed, USBIF_SPEED_FULL);
	CHECK(strcmp(d->desc, "pvusb HID Keyboard") == 0);
	CHECK_EQ(emul_tablet_input(d, 1, 1, 0, 0), -EINVAL);

	check_device_desc(d, 0x7502);
	check_string(d, 2, "pvusb HID Keyboard");
	uint16_t report_len = check_config_desc(d, 1, 1);
	check_report_desc(d, report_len, 0x06, 8 * 8, 5 + 3);

	set_configuration(d, 1);
	test_keyboard_requests(d);

	/* a key press completes the waiting transfer */
	struct xbuf a;
	intr_init(&a, d, 8);
	clear_log();
	CHECK_EQ(emul_dev_ops.submit(d, &a.x), 0);
	CHECK_EQ(times_completed(&a.x), 0);
	const uint8_t keys[6] = {0x04, 0x05}; /* a, b */
	CHECK_EQ(emul_keyboard_input(d, 0x02, keys), 0); /* left shift */
	CHECK_EQ(times_completed(&a.x), 1);
	const uint8_t pressed[8] = {0x02, 0, 0x04, 0x05, 0, 0, 0, 0};
	check_keyboard_report(&a, pressed);

	/* GET_REPORT(input) is the held state */
	struct xbuf t;
	CHECK_EQ(control(d, &t, 0xa1, 0x01, 0x0100, 0, 8), 0);
	CHECK_EQ(t.x.actual_length, 8);
	CHECK(memcmp(t.buf, pressed, 8) == 0);

	/* release everything (keys NULL), then a waiting transfer is cancelled */
	CHECK_EQ(emul_keyboard_input(d, 0, NULL), 0);
	intr_init(&a, d, 8);
	clear_log();
	CHECK_EQ(emul_dev_ops.submit(d, &a.x), 0);
	const uint8_t released[8] = {0};
	check_keyboard_report(&a, released);
	intr_init(&a, d, 8);
	clear_log();
	CHECK_EQ(emul_dev_ops.submit(d, &a.x), 0);
	CHECK_EQ(times_completed(&a.x), 0);
	emul_dev_ops.cancel(d, &a.x);
	CHECK_EQ(times_completed(&a.x), 1);
	CHECK_EQ(a.x.status, USBIF_STATUS_CONNRESET);

	/* a halted endpoint stalls; clearing the halt brings reports back */
	CHECK_EQ(control(d, &t, 0x02, USB_REQ_SET_FEATURE, 0, 0x81, 0), 0);
	intr_init(&a, d, 8);
	clear_log();
	CHECK_EQ(emul_dev_ops.submit(d, &a.x), 0);
	CHECK_EQ(a.x.status, USBIF_STATUS_STALL);
	CHECK_EQ(control(d, &t, 0x02, USB_REQ_CLEAR_FEATURE, 0, 0x81, 0), 0);
	intr_init(&a, d, 8);
	clear_log();
	CHECK_EQ(emul_dev_ops.submit(d, &a.x), 0);
	CHECK_EQ(emul_keyboard_input(d, 0, keys), 0);
	CHECK_EQ(times_completed(&a.x), 1);
	CHECK_EQ(intr_byte(&a, 2), 0x04);

	/* reset: LEDs off, report protocol, keyboard idle again */
	CHECK_EQ(emul_dev_ops.reset(d), 0);
	set_configuration(d, 1);
	CHECK_EQ(control(d, &t, 0xa1, 0x01, 0x0200, 0, 1), 0);
	CHECK_EQ(t.buf[0], 0);
	CHECK_EQ(control(d, &t, 0xa1, 0x03, 0, 0, 1), 0);
	CHECK_EQ(t.buf[0], 1);
	CHECK_EQ(control(d, &t, 0xa1, 0x02, 0, 0, 1), 0);
	CHECK_EQ(t.buf[0], 125);

	emul_dev_ops.close(d);
}

int main(void)
{
	test_tablet();
	test_keyboard();
	printf("test_hid: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
