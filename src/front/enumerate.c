/* SPDX-License-Identifier: MIT */
/* Enumeration as a guest's USB stack does it after the (local) port reset:
 * the device descriptor at address 0, SET_ADDRESS, then the rest. */
#include <errno.h>
#include <string.h>

#include "pvusb/front.h"

#define ENUM_TIMEOUT_MS 5000

static int get_desc(struct pvusb_front *f, unsigned port, uint8_t addr, uint8_t type, uint8_t index,
		    uint16_t lang, void *buf, uint16_t len)
{
	return pvusb_front_control(f, (uint8_t)port, addr, 0x80, USB_REQ_GET_DESCRIPTOR,
				   (uint16_t)(type << 8 | index), lang, buf, len, ENUM_TIMEOUT_MS);
}

/* A string descriptor as ASCII ('?' for anything else). */
static void get_string(struct pvusb_front *f, const struct pvusb_front_dev *d, uint8_t index,
		       char *out, size_t outlen)
{
	uint8_t buf[255];
	out[0] = 0;
	if (index == 0)
		return;
	int n = get_desc(f, d->port, d->addr, 3, index, 0x0409, buf, sizeof(buf));
	if (n < 2 || buf[1] != 3)
		return;
	if (n > buf[0])
		n = buf[0];
	size_t j = 0;
	for (int i = 2; i + 1 < n && j + 1 < outlen; i += 2)
		out[j++] = (buf[i + 1] == 0 && buf[i] >= 0x20 && buf[i] < 0x7f) ? (char)buf[i] : '?';
	out[j] = 0;
}

int pvusb_front_enumerate(struct pvusb_front *f, unsigned port, uint8_t addr, struct pvusb_front_dev *d)
{
	memset(d, 0, sizeof(*d));
	d->port = (uint8_t)port;
	d->speed = pvusb_front_port_speed(f, port);
	if (!d->speed)
		return -ENODEV;
	if (addr == 0 || addr > USBIF_MAX_ADDR)
		return -EINVAL;
	/* Linux asks for 64 bytes first and takes what comes (bMaxPacketSize0) */
	uint8_t buf[64];
	int rc = get_desc(f, port, 0, 1, 0, 0, buf, 64);
	if (rc < 0)
		return rc;
	if (rc < 8 || buf[1] != 1)
		return -EPROTO;
	rc = pvusb_front_control(f, (uint8_t)port, 0, 0x00, USB_REQ_SET_ADDRESS, addr, 0, NULL, 0,
				 ENUM_TIMEOUT_MS);
	if (rc < 0)
		return rc;
	d->addr = addr;
	rc = get_desc(f, port, addr, 1, 0, 0, d->dev_desc, 18);
	if (rc < 0)
		return rc;
	if (rc != 18)
		return -EPROTO;
	uint8_t head[9];
	rc = get_desc(f, port, addr, 2, 0, 0, head, 9);
	if (rc < 0)
		return rc;
	if (rc != 9 || head[1] != 2)
		return -EPROTO;
	uint16_t total = (uint16_t)(head[2] | head[3] << 8);
	if (total > sizeof(d->config))
		total = sizeof(d->config);
	rc = get_desc(f, port, addr, 2, 0, 0, d->config, total);
	if (rc < 0)
		return rc;
	d->config_len = (uint16_t)rc;
	get_string(f, d, d->dev_desc[14], d->manufacturer, sizeof(d->manufacturer));
	get_string(f, d, d->dev_desc[15], d->product, sizeof(d->product));
	get_string(f, d, d->dev_desc[16], d->serial, sizeof(d->serial));
	rc = pvusb_front_control(f, (uint8_t)port, addr, 0x00, USB_REQ_SET_CONFIGURATION, head[5], 0,
				 NULL, 0, ENUM_TIMEOUT_MS);
	return rc < 0 ? rc : 0;
}
