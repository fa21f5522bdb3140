/* SPDX-License-Identifier: MIT */
/*
 * Emulated USB HID devices: an absolute pointer ("tablet", like QEMU's
 * usb-tablet, so the guest pointer sits exactly where the host puts it, with
 * no acceleration to fight) and a boot-protocol keyboard. Both are full speed
 * with one interface and one interrupt IN endpoint; the framework in emul.c
 * answers the standard requests from the tables below.
 *
 * Reports are sent on change only: an interrupt IN waits in a small queue
 * until input arrives. The idle rate is stored for GET_IDLE but not acted on
 * (HID 1.11 7.2.4 lets a host rely on reports at changes; Linux sets it to 0).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emul.h"

#define LE16(v) (uint8_t)((v) & 0xff), (uint8_t)(((v) >> 8) & 0xff)

/* pid.codes hands out 0x1209 product IDs to open projects; these two are ours. */
#define HID_VENDOR 0x1209
#define HID_PRODUCT_TABLET 0x7501
#define HID_PRODUCT_KEYBOARD 0x7502

#define DESC_DEVICE 1
#define DESC_CONFIG 2
#define DESC_INTERFACE 4
#define DESC_ENDPOINT 5
#define DESC_HID 0x21
#define DESC_REPORT 0x22

#define USB_CLASS_HID 3
#define HID_SUBCLASS_NONE 0
#define HID_SUBCLASS_BOOT 1
#define HID_PROTO_NONE 0
#define HID_PROTO_KEYBOARD 1

/* class requests, HID 1.11 7.2 */
#define HID_REQ_GET_REPORT 0x01
#define HID_REQ_GET_IDLE 0x02
#define HID_REQ_GET_PROTOCOL 0x03
#define HID_REQ_SET_REPORT 0x09
#define HID_REQ_SET_IDLE 0x0a
#define HID_REQ_SET_PROTOCOL 0x0b

#define HID_REPORT_INPUT 1
#define HID_REPORT_OUTPUT 2

#define HID_PROTOCOL_REPORT 1 /* 0 is boot; report is the default after reset (HID 1.11 7.2.6) */

#define HID_INTERFACE 0
#define HID_EP_IN 0x81
#define HID_EP_MAXPACKET 8
#define HID_EP_INTERVAL 10 /* ms at full speed */

#define HID_QUEUE_MAX USB_URB_RING_SIZE /* no controller has more transfers in flight */
#define HID_REPORT_MAX 8

#define TABLET_REPORT_LEN 6 /* buttons, x le16, y le16, wheel */
#define TABLET_AXIS_MAX 32767
#define TABLET_BUTTONS 0x07
#define TABLET_WHEEL 5 /* byte index of the wheel, a relative delta */
#define KEYBOARD_REPORT_LEN 8 /* modifiers, reserved, 6 key usages */
#define KEYBOARD_LEDS 0x1f    /* Num, Caps, Scroll, Compose, Kana */

/* ---- descriptor tables ---- */

static const uint8_t tablet_report_desc[] = {
	0x05, 0x01,       /* Usage Page (Generic Desktop) */
	0x09, 0x02,       /* Usage (Mouse): what every OS binds an absolute pointer to */
	0xa1, 0x01,       /* Collection (Application) */
	0x09, 0x01,       /*   Usage (Pointer) */
	0xa1, 0x00,       /*   Collection (Physical) */
	0x05, 0x09,       /*     Usage Page (Button) */
	0x19, 0x01,       /*     Usage Minimum (1) */
	0x29, 0x03,       /*     Usage Maximum (3) */
	0x15, 0x00,       /*     Logical Minimum (0) */
	0x25, 0x01,       /*     Logical Maximum (1) */
	0x95, 0x03,       /*     Report Count (3) */
	0x75, 0x01,       /*     Report Size (1) */
	0x81, 0x02,       /*     Input (Data, Variable, Absolute): buttons */
	0x95, 0x01,       /*     Report Count (1) */
	0x75, 0x05,       /*     Report Size (5) */
	0x81, 0x01,       /*     Input (Constant): padding */
	0x05, 0x01,       /*     Usage Page (Generic Desktop) */
	0x09, 0x30,       /*     Usage (X) */
	0x09, 0x31,       /*     Usage (Y) */
	0x15, 0x00,       /*     Logical Minimum (0) */
	0x26, LE16(TABLET_AXIS_MAX), /* Logical Maximum (32767) */
	0x35, 0x00,       /*     Physical Minimum (0) */
	0x46, LE16(TABLET_AXIS_MAX), /* Physical Maximum (32767) */
	0x75, 0x10,       /*     Report Size (16) */
	0x95, 0x02,       /*     Report Count (2) */
	0x81, 0x02,       /*     Input (Data, Variable, Absolute): x, y */
	0x05, 0x01,       /*     Usage Page (Generic Desktop) */
	0x09, 0x38,       /*     Usage (Wheel) */
	0x15, 0x81,       /*     Logical Minimum (-127) */
	0x25, 0x7f,       /*     Logical Maximum (127) */
	0x35, 0x00,       /*     Physical Minimum (0) and */
	0x45, 0x00,       /*     Physical Maximum (0): same as logical */
	0x75, 0x08,       /*     Report Size (8) */
	0x95, 0x01,       /*     Report Count (1) */
	0x81, 0x06,       /*     Input (Data, Variable, Relative): wheel */
	0xc0,             /*   End Collection */
	0xc0,             /* End Collection */
};

/* The boot keyboard of HID 1.11 appendix B.1, except that key usages run to
 * 255 (as QEMU's do) so keys past 101 (F13-F24, international) get through. */
static const uint8_t keyboard_report_desc[] = {
	0x05, 0x01,       /* Usage Page (Generic Desktop) */
	0x09, 0x06,       /* Usage (Keyboard) */
	0xa1, 0x01,       /* Collection (Application) */
	0x05, 0x07,       /*   Usage Page (Key Codes) */
	0x19, 0xe0,       /*   Usage Minimum (224) */
	0x29, 0xe7,       /*   Usage Maximum (231) */
	0x15, 0x00,       /*   Logical Minimum (0) */
	0x25, 0x01,       /*   Logical Maximum (1) */
	0x75, 0x01,       /*   Report Size (1) */
	0x95, 0x08,       /*   Report Count (8) */
	0x81, 0x02,       /*   Input (Data, Variable, Absolute): modifiers */
	0x95, 0x01,       /*   Report Count (1) */
	0x75, 0x08,       /*   Report Size (8) */
	0x81, 0x01,       /*   Input (Constant): reserved byte */
	0x95, 0x05,       /*   Report Count (5) */
	0x75, 0x01,       /*   Report Size (1) */
	0x05, 0x08,       /*   Usage Page (LEDs) */
	0x19, 0x01,       /*   Usage Minimum (1) */
	0x29, 0x05,       /*   Usage Maximum (5) */
	0x91, 0x02,       /*   Output (Data, Variable, Absolute): LEDs */
	0x95, 0x01,       /*   Report Count (1) */
	0x75, 0x03,       /*   Report Size (3) */
	0x91, 0x01,       /*   Output (Constant): padding */
	0x95, 0x06,       /*   Report Count (6) */
	0x75, 0x08,       /*   Report Size (8) */
	0x15, 0x00,       /*   Logical Minimum (0) */
	0x26, LE16(255),  /*   Logical Maximum (255): two bytes, one would read as -1 */
	0x05, 0x07,       /*   Usage Page (Key Codes) */
	0x19, 0x00,       /*   Usage Minimum (0) */
	0x29, 0xff,       /*   Usage Maximum (255) */
	0x81, 0x00,       /*   Input (Data, Array): key usages */
	0xc0,             /* End Collection */
};

/* bcdUSB 1.10: a full-speed-only device then has no device qualifier to
 * answer for (emul.c stalls it, as it should). */
#define HID_DEVICE_DESC(product)                                                                  \
	{                                                                                         \
		18, DESC_DEVICE, LE16(0x0110), 0, 0, 0, 64, LE16(HID_VENDOR), LE16(product),      \
		LE16(0x0100), 1, 2, 3, 1                                                          \
	}

#define HID_DESC_OFFSET 18 /* after the configuration and interface descriptors */
#define HID_DESC_LEN 9
#define HID_CONFIG_LEN 34

/* bmAttributes 0x80, no remote wakeup: PVUSB has no way to carry a wakeup
 * to the guest, so a guest must never suspend the device expecting one. */
#define HID_CONFIG_DESC(subclass, protocol, report_desc_len)                                      \
	{                                                                                         \
		9, DESC_CONFIG, LE16(HID_CONFIG_LEN), 1, 1, 0, 0x80, 50,                          \
		9, DESC_INTERFACE, HID_INTERFACE, 0, 1, USB_CLASS_HID, subclass, protocol, 0,     \
		HID_DESC_LEN, DESC_HID, LE16(0x0111), 0, 1, DESC_REPORT, LE16(report_desc_len),   \
		7, DESC_ENDPOINT, HID_EP_IN, 3, LE16(HID_EP_MAXPACKET), HID_EP_INTERVAL,          \
	}

static const uint8_t tablet_dev_desc[] = HID_DEVICE_DESC(HID_PRODUCT_TABLET);
static const uint8_t keyboard_dev_desc[] = HID_DEVICE_DESC(HID_PRODUCT_KEYBOARD);
static const uint8_t tablet_config_desc[] =
	HID_CONFIG_DESC(HID_SUBCLASS_NONE, HID_PROTO_NONE, sizeof(tablet_report_desc));
static const uint8_t keyboard_config_desc[] =
	HID_CONFIG_DESC(HID_SUBCLASS_BOOT, HID_PROTO_KEYBOARD, sizeof(keyboard_report_desc));

_Static_assert(sizeof(tablet_dev_desc) == 18, "device descriptor");
_Static_assert(sizeof(tablet_config_desc) == HID_CONFIG_LEN, "config wTotalLength");
_Static_assert(sizeof(keyboard_config_desc) == HID_CONFIG_LEN, "config wTotalLength");
_Static_assert(TABLET_REPORT_LEN <= HID_EP_MAXPACKET && KEYBOARD_REPORT_LEN <= HID_EP_MAXPACKET,
	       "a report fits one packet");

static const char *const tablet_strings[] = {"pvusb", "pvusb HID Tablet", "1"};
static const char *const keyboard_strings[] = {"pvusb", "pvusb HID Keyboard", "1"};

/* ---- per-kind description and per-device state ---- */

struct hid_model {
	const char *name; /* the device name users give, and the open error's subject */
	const struct emul_class_ops *ops;
	const uint8_t *dev_desc, *config_desc;
	const char *const *strings;
	const uint8_t *report_desc;
	uint16_t report_desc_len;
	uint8_t report_len;
	uint8_t delta_bytes;  /* bit i: report byte i is a relative delta, zeroed once sent */
	bool boot;            /* boot subclass: GET/SET_PROTOCOL apply */
	bool leds;            /* has the LED output report */
	uint8_t default_idle; /* 4 ms units: HID 1.11 7.2.4 says 500 ms for keyboards, 0 for mice */
};

struct hid_state {
	const struct hid_model *model;
	uint8_t report[HID_REPORT_MAX]; /* the input report the host would read now */
	bool pending;                   /* report changed since the host last got one */
	uint8_t leds;
	uint8_t idle;
	uint8_t protocol;
	/* interrupt INs waiting for input, oldest first. Invariant: never
	 * non-empty while pending, since a pending report goes out at once. */
	struct pvusb_xfer *queue[HID_QUEUE_MAX];
	unsigned nqueued;
};

static void clear_deltas(struct hid_state *s)
{
	for (unsigned i = 0; i < s->model->report_len; i++)
		if (s->model->delta_bytes & (1u << i))
			s->report[i] = 0;
}

static void reset_protocol_state(struct hid_state *s)
{
	clear_deltas(s);
	/* position, held buttons and keys are the world's state, not the
	 * device's: they survive a reset, but are not re-sent unasked */
	s->pending = false;
	s->leds = 0;
	s->idle = s->model->default_idle;
	s->protocol = HID_PROTOCOL_REPORT;
}

/* ---- interrupt IN ---- */

static struct pvusb_xfer *dequeue(struct hid_state *s, unsigned i)
{
	struct pvusb_xfer *x = s->queue[i];
	memmove(&s->queue[i], &s->queue[i + 1], (s->nqueued - i - 1) * sizeof(s->queue[0]));
	s->nqueued--;
	return x;
}

static void send_report(struct emul_dev *e, struct hid_state *s, struct pvusb_xfer *x)
{
	size_t n = x->length < s->model->report_len ? x->length : s->model->report_len;
	n = pvusb_xfer_copy_to(x, 0, s->report, n);
	clear_deltas(s); /* a delta is reported once */
	s->pending = false;
	emul_complete(e, x, USBIF_STATUS_OK, (uint32_t)n);
}

static int hid_transfer(struct emul_dev *e, struct pvusb_xfer *x)
{
	struct hid_state *s = e->cls_priv;
	/* emul.c passes only endpoints of the active setting: ours is 0x81 */
	if (s->pending) {
		send_report(e, s, x);
		return 0;
	}
	if (s->nqueued == HID_QUEUE_MAX)
		return USBIF_STATUS_INVAL; /* more than a ring holds: a core bug */
	s->queue[s->nqueued++] = x;
	return 0;
}

static void hid_cancel(struct emul_dev *e, struct pvusb_xfer *x)
{
	struct hid_state *s = e->cls_priv;
	for (unsigned i = 0; i < s->nqueued; i++) {
		if (s->queue[i] == x) {
			emul_complete(e, dequeue(s, i), USBIF_STATUS_CONNRESET, 0);
			return;
		}
	}
}

/* New input state from the outside world; lock held. */
static void hid_update(struct emul_dev *e, struct hid_state *s, const uint8_t *report)
{
	if (memcmp(report, s->report, s->model->report_len) != 0) {
		memcpy(s->report, report, s->model->report_len);
		s->pending = true;
	}
	if (s->pending && s->nqueued > 0)
		send_report(e, s, dequeue(s, 0));
}

static void hid_configured(struct emul_dev *e)
{
	struct hid_state *s = e->cls_priv;
	/* SET_CONFIGURATION and SET_INTERFACE reset the endpoint. A host
	 * disables it first, so this queue is normally empty; a guest that did
	 * not gets its transfers back as Linux ends them on a disabled one. */
	while (s->nqueued > 0)
		emul_complete(e, dequeue(s, 0), USBIF_STATUS_SHUTDOWN, 0);
	if (e->config == 0)
		reset_protocol_state(s);
}

/* ---- control requests ---- */

static int reply(uint8_t *data, uint16_t len, const void *src, size_t n)
{
	if (n > len)
		n = len;
	memcpy(data, src, n);
	return (int)n;
}

/* Standard GET_DESCRIPTOR to the interface: the HID class descriptors. */
static int class_descriptor(const struct hid_state *s, const uint8_t *setup, uint8_t *data,
			    uint16_t len)
{
	if (setup[0] != (USB_DIR_IN | USB_TYPE_STANDARD | USB_RECIP_INTERFACE) ||
	    setup[1] != USB_REQ_GET_DESCRIPTOR || setup[2] != 0)
		return USBIF_STATUS_STALL;
	switch (setup[3]) {
	case DESC_HID:
		return reply(data, len, s->model->config_desc + HID_DESC_OFFSET, HID_DESC_LEN);
	case DESC_REPORT:
		return reply(data, len, s->model->report_desc, s->model->report_desc_len);
	default:
		return USBIF_STATUS_STALL;
	}
}

/* wValue: report type in the high byte, report ID (we have none) in the low */
static int get_report(const struct hid_state *s, uint16_t value, uint8_t *data, uint16_t len)
{
	if (value == (HID_REPORT_INPUT << 8))
		return reply(data, len, s->report, s->model->report_len);
	if (value == (HID_REPORT_OUTPUT << 8) && s->model->leds)
		return reply(data, len, &s->leds, 1);
	return USBIF_STATUS_STALL;
}

static int set_report(struct hid_state *s, uint16_t value, const uint8_t *data, uint16_t len)
{
	if (value != (HID_REPORT_OUTPUT << 8) || !s->model->leds || len < 1)
		return USBIF_STATUS_STALL;
	s->leds = data[0] & KEYBOARD_LEDS;
	return 0;
}

static int class_request(struct hid_state *s, const uint8_t *setup, uint8_t *data, uint16_t len)
{
	bool in = setup[0] & USB_DIR_IN;
	uint16_t value = usbif_le16(setup + 2);
	uint8_t report_id = setup[2];

	switch (setup[1]) {
	case HID_REQ_GET_REPORT:
		return in ? get_report(s, value, data, len) : USBIF_STATUS_STALL;
	case HID_REQ_SET_REPORT:
		return !in ? set_report(s, value, data, len) : USBIF_STATUS_STALL;
	case HID_REQ_GET_IDLE:
		if (!in || report_id != 0)
			return USBIF_STATUS_STALL;
		return reply(data, len, &s->idle, 1);
	case HID_REQ_SET_IDLE:
		if (in || report_id != 0)
			return USBIF_STATUS_STALL;
		s->idle = setup[3];
		return 0;
	/* only a boot device has a boot protocol to switch to (HID 1.11 7.2.5) */
	case HID_REQ_GET_PROTOCOL:
		if (!in || !s->model->boot)
			return USBIF_STATUS_STALL;
		return reply(data, len, &s->protocol, 1);
	case HID_REQ_SET_PROTOCOL:
		if (in || !s->model->boot || value > HID_PROTOCOL_REPORT)
			return USBIF_STATUS_STALL;
		/* the boot report is our report: nothing else changes */
		s->protocol = (uint8_t)value;
		return 0;
	default:
		return USBIF_STATUS_STALL;
	}
}

static int hid_control(struct emul_dev *e, const uint8_t setup[8], uint8_t *data, uint16_t len)
{
	struct hid_state *s = e->cls_priv;
	if ((setup[0] & USB_RECIP_MASK) != USB_RECIP_INTERFACE ||
	    usbif_le16(setup + 4) != HID_INTERFACE)
		return USBIF_STATUS_STALL;
	switch (setup[0] & USB_TYPE_MASK) {
	case USB_TYPE_STANDARD:
		return class_descriptor(s, setup, data, len);
	case USB_TYPE_CLASS:
		return class_request(s, setup, data, len);
	default:
		return USBIF_STATUS_STALL;
	}
}

static void hid_destroy(struct emul_dev *e)
{
	free(e->cls_priv);
	e->cls_priv = NULL;
}

/* Two tables with the same hooks: their addresses tell the kinds apart. */
static const struct emul_class_ops tablet_ops = {
	.control = hid_control,
	.transfer = hid_transfer,
	.cancel = hid_cancel,
	.configured = hid_configured,
	.destroy = hid_destroy,
};

static const struct emul_class_ops keyboard_ops = {
	.control = hid_control,
	.transfer = hid_transfer,
	.cancel = hid_cancel,
	.configured = hid_configured,
	.destroy = hid_destroy,
};

static const struct hid_model tablet_model = {
	.name = "tablet",
	.ops = &tablet_ops,
	.dev_desc = tablet_dev_desc,
	.config_desc = tablet_config_desc,
	.strings = tablet_strings,
	.report_desc = tablet_report_desc,
	.report_desc_len = sizeof(tablet_report_desc),
	.report_len = TABLET_REPORT_LEN,
	.delta_bytes = 1u << TABLET_WHEEL,
	.boot = false,
	.leds = false,
	.default_idle = 0,
};

static const struct hid_model keyboard_model = {
	.name = "keyboard",
	.ops = &keyboard_ops,
	.dev_desc = keyboard_dev_desc,
	.config_desc = keyboard_config_desc,
	.strings = keyboard_strings,
	.report_desc = keyboard_report_desc,
	.report_desc_len = sizeof(keyboard_report_desc),
	.report_len = KEYBOARD_REPORT_LEN,
	.delta_bytes = 0,
	.boot = true,
	.leds = true,
	.default_idle = 125,
};

/* ---- constructors ---- */

static int hid_open(const struct hid_model *m, const char *opts, struct pvusb_dev **out, char *err,
		    size_t errlen)
{
	if (opts && *opts) {
		snprintf(err, errlen, "%s takes no options", m->name);
		return -EINVAL;
	}
	struct emul_dev *e = calloc(1, sizeof(*e));
	struct hid_state *s = calloc(1, sizeof(*s));
	if (!e || !s) {
		free(e);
		free(s);
		snprintf(err, errlen, "%s: out of memory", m->name);
		return -ENOMEM;
	}
	s->model = m;
	reset_protocol_state(s);

	emul_init(e, m->ops, m->dev_desc, m->config_desc, m->strings, 3);
	e->cls_priv = s;
	e->base.speed = USBIF_SPEED_FULL;
	snprintf(e->base.name, sizeof(e->base.name), "%s", m->name);
	snprintf(e->base.desc, sizeof(e->base.desc), "%s", m->strings[1]);
	*out = &e->base;
	return 0;
}

int emul_tablet_open(const char *opts, struct pvusb_dev **out, char *err, size_t errlen)
{
	return hid_open(&tablet_model, opts, out, err, errlen);
}

int emul_keyboard_open(const char *opts, struct pvusb_dev **out, char *err, size_t errlen)
{
	return hid_open(&keyboard_model, opts, out, err, errlen);
}

/* ---- input from the host side ---- */

/* The device behind `d` if it is an emulated HID device of the kind `ops`. */
static struct emul_dev *hid_of(struct pvusb_dev *d, const struct emul_class_ops *ops)
{
	if (!d || d->ops != &emul_dev_ops)
		return NULL;
	struct emul_dev *e = (struct emul_dev *)d;
	return e->cls == ops ? e : NULL;
}

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v & 0xff);
	p[1] = (uint8_t)(v >> 8);
}

/* Wheel deltas the host has not read yet add up, within the descriptor's
 * -127..127. */
static int8_t add_wheel(int8_t unread, int8_t delta)
{
	int sum = unread + delta;
	return (int8_t)(sum > 127 ? 127 : sum < -127 ? -127 : sum);
}

int emul_tablet_input(struct pvusb_dev *d, uint16_t x, uint16_t y, uint8_t buttons, int8_t wheel)
{
	struct emul_dev *e = hid_of(d, &tablet_ops);
	if (!e)
		return -EINVAL;
	pthread_mutex_lock(&e->lock);
	struct hid_state *s = e->cls_priv;
	uint8_t report[TABLET_REPORT_LEN];
	report[0] = buttons & TABLET_BUTTONS;
	/* a position past the edge is the edge, as on a screen */
	put_le16(report + 1, x > TABLET_AXIS_MAX ? TABLET_AXIS_MAX : x);
	put_le16(report + 3, y > TABLET_AXIS_MAX ? TABLET_AXIS_MAX : y);
	report[TABLET_WHEEL] = (uint8_t)add_wheel((int8_t)s->report[TABLET_WHEEL], wheel);
	hid_update(e, s, report);
	pthread_mutex_unlock(&e->lock);
	return 0;
}

int emul_keyboard_input(struct pvusb_dev *d, uint8_t modifiers, const uint8_t keys[6])
{
	struct emul_dev *e = hid_of(d, &keyboard_ops);
	if (!e)
		return -EINVAL;
	uint8_t report[KEYBOARD_REPORT_LEN] = {modifiers, 0};
	if (keys) /* NULL: nothing held */
		memcpy(report + 2, keys, 6);
	pthread_mutex_lock(&e->lock);
	hid_update(e, e->cls_priv, report);
	pthread_mutex_unlock(&e->lock);
	return 0;
}
