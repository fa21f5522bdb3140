/* SPDX-License-Identifier: MIT */
/* Emulated devices: the standard requests every device answers the same way,
 * driven by its descriptor tables (USB 2.0 chapter 9). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "emul.h"

#define DESC_DEVICE 1
#define DESC_CONFIG 2
#define DESC_STRING 3
#define DESC_INTERFACE 4
#define DESC_ENDPOINT 5
#define DESC_QUALIFIER 6

static struct emul_dev *to_emul(struct pvusb_dev *d) { return (struct emul_dev *)d; }

void emul_init(struct emul_dev *e, const struct emul_class_ops *cls, const uint8_t *dev_desc,
	       const uint8_t *config_desc, const char *const *strings, unsigned nstrings)
{
	e->base.ops = &emul_dev_ops;
	e->base.vendor = usbif_le16(dev_desc + 8);
	e->base.product = usbif_le16(dev_desc + 10);
	e->base.dev_class = dev_desc[4];
	e->cls = cls;
	e->dev_desc = dev_desc;
	e->config_desc = config_desc;
	e->strings = strings;
	e->nstrings = nstrings;
	pthread_mutex_init(&e->lock, NULL);
}

uint32_t emul_frame_number(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint32_t)(ts.tv_sec * 8000 + ts.tv_nsec / 125000);
}

void emul_complete(struct emul_dev *e, struct pvusb_xfer *x, int32_t status, uint32_t actual)
{
	(void)e;
	x->status = status;
	x->actual_length = actual;
	pvusb_xfer_complete(x);
}

static uint16_t config_total_len(const struct emul_dev *e)
{
	return usbif_le16(e->config_desc + 2);
}

/* Walk the configuration calling `visit` on each descriptor with the
 * interface number and alternate setting it belongs to. Stops early when
 * visit returns non-NULL. Lengths are our own tables, but stay careful. */
typedef const uint8_t *(*desc_visit)(const struct emul_dev *e, const uint8_t *d, int ifnum, int alt,
				     const void *arg);

static const uint8_t *walk_config(const struct emul_dev *e, desc_visit visit, const void *arg)
{
	const uint8_t *p = e->config_desc, *end = p + config_total_len(e);
	int ifnum = -1, alt = -1;
	while (p + 2 <= end && p[0] >= 2 && p + p[0] <= end) {
		if (p[1] == DESC_INTERFACE && p[0] >= 9) {
			ifnum = p[2];
			alt = p[3];
		}
		const uint8_t *hit = visit(e, p, ifnum, alt, arg);
		if (hit)
			return hit;
		p += p[0];
	}
	return NULL;
}

static const uint8_t *match_active_ep(const struct emul_dev *e, const uint8_t *d, int ifnum, int alt,
				      const void *arg)
{
	uint8_t ep = *(const uint8_t *)arg;
	if (d[1] != DESC_ENDPOINT || d[0] < 7 || ifnum < 0 || ifnum >= EMUL_MAX_INTERFACES)
		return NULL;
	return (d[2] == ep && e->alt[ifnum] == alt) ? d : NULL;
}

const uint8_t *emul_find_endpoint(const struct emul_dev *e, uint8_t ep)
{
	if (e->config == 0)
		return NULL;
	return walk_config(e, match_active_ep, &ep);
}

uint16_t emul_ep_maxpacket(const struct emul_dev *e, uint8_t ep)
{
	const uint8_t *d = emul_find_endpoint(e, ep);
	return d ? (uint16_t)(usbif_le16(d + 4) & 0x7ff) : 0;
}

static const uint8_t *match_alt(const struct emul_dev *e, const uint8_t *d, int ifnum, int alt,
				const void *arg)
{
	const int *want = arg;
	return (d[1] == DESC_INTERFACE && ifnum == want[0] && alt == want[1]) ? d : NULL;
}

static bool alt_exists(const struct emul_dev *e, int ifnum, int alt)
{
	int want[2] = {ifnum, alt};
	return walk_config(e, match_alt, want) != NULL;
}

static uint32_t halt_bit(uint8_t ep) { return 1u << ((ep & 0x0f) + ((ep & USB_DIR_IN) ? 16 : 0)); }

/* ---- standard requests ---- */

/* A string descriptor in UTF-16LE; our strings are ASCII. */
static int string_desc(const struct emul_dev *e, uint8_t index, uint8_t *out, uint16_t len)
{
	uint8_t buf[2 + 2 * 126];
	size_t n;
	if (index == 0) {
		buf[2] = 0x09; /* LANGID en-US */
		buf[3] = 0x04;
		n = 4;
	} else {
		if (index > e->nstrings)
			return USBIF_STATUS_STALL;
		const char *s = e->strings[index - 1];
		size_t chars = strnlen(s, 126);
		for (size_t i = 0; i < chars; i++) {
			buf[2 + 2 * i] = (uint8_t)s[i];
			buf[3 + 2 * i] = 0;
		}
		n = 2 + 2 * chars;
	}
	buf[0] = (uint8_t)n;
	buf[1] = DESC_STRING;
	if (n > len)
		n = len;
	memcpy(out, buf, n);
	return (int)n;
}

static int copy_desc(const uint8_t *desc, size_t dlen, uint8_t *out, uint16_t len)
{
	size_t n = dlen < len ? dlen : len;
	memcpy(out, desc, n);
	return (int)n;
}

static int get_descriptor(struct emul_dev *e, const uint8_t *setup, uint8_t *data, uint16_t len)
{
	uint8_t type = setup[3], index = setup[2];
	switch (type) {
	case DESC_DEVICE:
		return copy_desc(e->dev_desc, 18, data, len);
	case DESC_CONFIG:
		if (index != 0)
			return USBIF_STATUS_STALL;
		return copy_desc(e->config_desc, config_total_len(e), data, len);
	case DESC_STRING:
		return string_desc(e, index, data, len);
	case DESC_QUALIFIER:
		if (!e->qualifier)
			return USBIF_STATUS_STALL;
		return copy_desc(e->qualifier, 10, data, len);
	default:
		return e->cls->control ? e->cls->control(e, setup, data, len) : USBIF_STATUS_STALL;
	}
}

static int set_configuration(struct emul_dev *e, uint8_t value)
{
	if (value != 0 && value != e->config_desc[5])
		return USBIF_STATUS_STALL;
	e->config = value;
	memset(e->alt, 0, sizeof(e->alt));
	e->halted = 0;
	if (e->cls->configured)
		e->cls->configured(e);
	return 0;
}

static int set_interface(struct emul_dev *e, uint16_t ifnum, uint16_t alt)
{
	if (e->config == 0 || ifnum >= EMUL_MAX_INTERFACES || alt > 255 || !alt_exists(e, ifnum, alt))
		return USBIF_STATUS_STALL;
	e->alt[ifnum] = (uint8_t)alt;
	e->halted = 0; /* SET_INTERFACE resets the data toggles and halts (9.1.1.5) */
	if (e->cls->configured)
		e->cls->configured(e);
	return 0;
}

static int endpoint_feature(struct emul_dev *e, bool set, uint16_t ep)
{
	if ((ep & 0x0f) != 0 && !emul_find_endpoint(e, (uint8_t)ep))
		return USBIF_STATUS_STALL;
	if ((ep & 0x0f) == 0)
		return 0; /* halting the default pipe is a no-op */
	if (set) {
		e->halted |= halt_bit((uint8_t)ep);
	} else {
		e->halted &= ~halt_bit((uint8_t)ep);
		if (e->cls->halt_cleared)
			e->cls->halt_cleared(e, (uint8_t)ep);
	}
	return 0;
}

static int get_status(struct emul_dev *e, uint8_t recip, uint16_t index, uint8_t *data, uint16_t len)
{
	uint8_t st[2] = {0, 0};
	if (recip == USB_RECIP_DEVICE)
		st[0] = (uint8_t)(((e->config_desc[7] & 0x40) ? 1 : 0) | (e->remote_wakeup ? 2 : 0));
	else if (recip == USB_RECIP_ENDPOINT) {
		if ((index & 0x0f) && !emul_find_endpoint(e, (uint8_t)index))
			return USBIF_STATUS_STALL;
		st[0] = (e->halted & halt_bit((uint8_t)index)) ? 1 : 0;
	}
	return copy_desc(st, 2, data, len);
}

/* Standard requests; returns the IN byte count, 0, or a negative status.
 * Anything not standard goes to the class. */
static int standard_request(struct emul_dev *e, const uint8_t *setup, uint8_t *data, uint16_t len)
{
	uint8_t rt = setup[0], recip = rt & USB_RECIP_MASK;
	uint16_t value = usbif_le16(setup + 2), index = usbif_le16(setup + 4);
	bool in = rt & USB_DIR_IN;

	switch (setup[1]) {
	case USB_REQ_GET_STATUS:
		return in ? get_status(e, recip, index, data, len) : USBIF_STATUS_STALL;
	case USB_REQ_CLEAR_FEATURE:
	case USB_REQ_SET_FEATURE: {
		bool set = setup[1] == USB_REQ_SET_FEATURE;
		if (recip == USB_RECIP_ENDPOINT && value == USB_ENDPOINT_HALT)
			return endpoint_feature(e, set, index);
		if (recip == USB_RECIP_DEVICE && value == 1) { /* DEVICE_REMOTE_WAKEUP */
			e->remote_wakeup = set;
			return 0;
		}
		if (recip == USB_RECIP_DEVICE && value == 2 && set) /* TEST_MODE */
			return 0;
		return USBIF_STATUS_STALL;
	}
	case USB_REQ_GET_DESCRIPTOR:
		return in ? get_descriptor(e, setup, data, len) : USBIF_STATUS_STALL;
	case USB_REQ_GET_CONFIGURATION:
		return in ? copy_desc(&e->config, 1, data, len) : USBIF_STATUS_STALL;
	case USB_REQ_SET_CONFIGURATION:
		return set_configuration(e, (uint8_t)value);
	case USB_REQ_GET_INTERFACE:
		if (!in || e->config == 0 || index >= EMUL_MAX_INTERFACES || !alt_exists(e, index, 0))
			return USBIF_STATUS_STALL;
		return copy_desc(&e->alt[index], 1, data, len);
	case USB_REQ_SET_INTERFACE:
		return set_interface(e, index, value);
	default:
		return USBIF_STATUS_STALL;
	}
}

static int submit_control(struct emul_dev *e, struct pvusb_xfer *x)
{
	uint8_t data[EMUL_CTRL_MAX];
	const uint8_t *setup = x->setup;
	bool in = setup[0] & USB_DIR_IN;
	uint32_t len = usbif_le16(setup + 6);
	if (len > x->length)
		len = x->length;
	if (len > EMUL_CTRL_MAX) {
		if (!in)
			return USBIF_STATUS_STALL; /* more OUT data than we can take */
		len = EMUL_CTRL_MAX;
	}
	if (!in)
		pvusb_xfer_copy_from(x, 0, data, len);

	int rc;
	if ((setup[0] & USB_TYPE_MASK) == USB_TYPE_STANDARD &&
	    !(setup[1] == USB_REQ_GET_DESCRIPTOR && (setup[0] & USB_RECIP_MASK) != USB_RECIP_DEVICE))
		rc = standard_request(e, setup, data, (uint16_t)len);
	else
		rc = e->cls->control ? e->cls->control(e, setup, data, (uint16_t)len) : USBIF_STATUS_STALL;

	if (rc < 0) {
		emul_complete(e, x, rc, 0);
		return 0;
	}
	uint32_t actual = in ? pvusb_xfer_copy_to(x, 0, data, (size_t)rc) : len;
	emul_complete(e, x, 0, actual);
	return 0;
}

static bool type_matches(const uint8_t *epd, uint8_t type)
{
	static const uint8_t usb_to_usbif[4] = {USBIF_PIPE_TYPE_CTRL, USBIF_PIPE_TYPE_ISOC,
						USBIF_PIPE_TYPE_BULK, USBIF_PIPE_TYPE_INT};
	return usb_to_usbif[epd[3] & 3] == type;
}

static int emul_submit(struct pvusb_dev *d, struct pvusb_xfer *x)
{
	struct emul_dev *e = to_emul(d);
	int rc;
	pthread_mutex_lock(&e->lock);
	if (x->endpoint == 0) {
		rc = x->type == USBIF_PIPE_TYPE_CTRL ? submit_control(e, x) : USBIF_STATUS_INVAL;
	} else {
		uint8_t ep = (uint8_t)(x->endpoint | (x->in ? USB_DIR_IN : 0));
		const uint8_t *epd = emul_find_endpoint(e, ep);
		if (!epd || !type_matches(epd, x->type))
			rc = USBIF_STATUS_INVAL; /* no such endpoint in the active setting */
		else if (e->halted & halt_bit(ep)) {
			emul_complete(e, x, USBIF_STATUS_STALL, 0);
			rc = 0;
		} else
			rc = e->cls->transfer ? e->cls->transfer(e, x) : USBIF_STATUS_INVAL;
	}
	pthread_mutex_unlock(&e->lock);
	return rc;
}

static void emul_cancel(struct pvusb_dev *d, struct pvusb_xfer *x)
{
	struct emul_dev *e = to_emul(d);
	pthread_mutex_lock(&e->lock);
	if (e->cls->cancel)
		e->cls->cancel(e, x);
	pthread_mutex_unlock(&e->lock);
}

static int emul_reset(struct pvusb_dev *d)
{
	struct emul_dev *e = to_emul(d);
	pthread_mutex_lock(&e->lock);
	set_configuration(e, 0);
	e->remote_wakeup = false;
	pthread_mutex_unlock(&e->lock);
	return 0;
}

static void emul_close(struct pvusb_dev *d)
{
	struct emul_dev *e = to_emul(d);
	if (e->cls->destroy)
		e->cls->destroy(e);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

const struct pvusb_dev_ops emul_dev_ops = {
	.kind = "emulated",
	.submit = emul_submit,
	.cancel = emul_cancel,
	.reset = emul_reset,
	.close = emul_close,
};
