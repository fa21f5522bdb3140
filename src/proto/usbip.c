/* SPDX-License-Identifier: MIT */
/* The USB/IP wire format: big-endian fields at the offsets of the spec's
 * sections A and B. No I/O. */
#include <errno.h>
#include <string.h>

#include "pvusb/usbip.h"

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void usbip_put_op_common(uint8_t out[USBIP_OP_COMMON_SIZE], uint16_t code, uint32_t status)
{
	put16(out, USBIP_VERSION);
	put16(out + 2, code);
	put32(out + 4, status);
}

int usbip_get_op_common(const uint8_t in[USBIP_OP_COMMON_SIZE], struct usbip_op_common *op)
{
	op->version = get16(in);
	op->code = get16(in + 2);
	op->status = get32(in + 4);
	return op->version == USBIP_VERSION ? 0 : -EPROTO;
}

void usbip_put_device(uint8_t out[USBIP_DEVICE_SIZE], const struct usbip_device *d)
{
	memset(out, 0, USBIP_DEVICE_SIZE);
	/* strings stay NUL-terminated: one byte of each field is never copied */
	memcpy(out, d->path, strnlen(d->path, sizeof(d->path) - 1));
	memcpy(out + 0x100, d->busid, strnlen(d->busid, sizeof(d->busid) - 1));
	put32(out + 0x120, d->busnum);
	put32(out + 0x124, d->devnum);
	put32(out + 0x128, d->speed);
	put16(out + 0x12c, d->id_vendor);
	put16(out + 0x12e, d->id_product);
	put16(out + 0x130, d->bcd_device);
	out[0x132] = d->dev_class;
	out[0x133] = d->dev_subclass;
	out[0x134] = d->dev_protocol;
	out[0x135] = d->configuration_value;
	out[0x136] = d->num_configurations;
	out[0x137] = d->num_interfaces;
}

void usbip_put_interface(uint8_t out[USBIP_INTERFACE_SIZE], const struct usbip_interface *i)
{
	out[0] = i->cls;
	out[1] = i->subclass;
	out[2] = i->protocol;
	out[3] = 0;
}

int usbip_get_busid(const uint8_t in[USBIP_BUSID_SIZE], char busid[USBIP_BUSID_SIZE])
{
	if (!memchr(in, 0, USBIP_BUSID_SIZE))
		return -EPROTO;
	memcpy(busid, in, USBIP_BUSID_SIZE);
	return 0;
}

void usbip_put_header(uint8_t out[USBIP_HEADER_SIZE], const struct usbip_header *h)
{
	memset(out, 0, USBIP_HEADER_SIZE);
	put32(out, h->command);
	put32(out + 4, h->seqnum);
	put32(out + 8, h->devid);
	put32(out + 12, h->direction);
	put32(out + 16, h->ep);
	switch (h->command) {
	case USBIP_CMD_SUBMIT:
		put32(out + 20, h->u.submit.transfer_flags);
		put32(out + 24, (uint32_t)h->u.submit.transfer_buffer_length);
		put32(out + 28, (uint32_t)h->u.submit.start_frame);
		put32(out + 32, (uint32_t)h->u.submit.number_of_packets);
		put32(out + 36, (uint32_t)h->u.submit.interval);
		memcpy(out + 40, h->u.submit.setup, 8);
		break;
	case USBIP_RET_SUBMIT:
		put32(out + 20, (uint32_t)h->u.ret_submit.status);
		put32(out + 24, (uint32_t)h->u.ret_submit.actual_length);
		put32(out + 28, (uint32_t)h->u.ret_submit.start_frame);
		put32(out + 32, (uint32_t)h->u.ret_submit.number_of_packets);
		put32(out + 36, (uint32_t)h->u.ret_submit.error_count);
		break;
	case USBIP_CMD_UNLINK:
		put32(out + 20, h->u.unlink.unlink_seqnum);
		break;
	case USBIP_RET_UNLINK:
		put32(out + 20, (uint32_t)h->u.ret_unlink.status);
		break;
	}
}

int usbip_get_cmd_header(const uint8_t in[USBIP_HEADER_SIZE], struct usbip_header *h, uint32_t max_len)
{
	memset(h, 0, sizeof(*h));
	h->command = get32(in);
	h->seqnum = get32(in + 4);
	h->devid = get32(in + 8);
	h->direction = get32(in + 12);
	h->ep = get32(in + 16);
	if (h->command == USBIP_CMD_UNLINK) {
		h->u.unlink.unlink_seqnum = get32(in + 20);
		return 0;
	}
	if (h->command != USBIP_CMD_SUBMIT || h->ep > 15 || h->direction > USBIP_DIR_IN)
		return -EPROTO;
	h->u.submit.transfer_flags = get32(in + 20);
	h->u.submit.transfer_buffer_length = (int32_t)get32(in + 24);
	h->u.submit.start_frame = (int32_t)get32(in + 28);
	h->u.submit.number_of_packets = (int32_t)get32(in + 32);
	h->u.submit.interval = (int32_t)get32(in + 36);
	memcpy(h->u.submit.setup, in + 40, 8);
	if (h->u.submit.transfer_buffer_length < 0 ||
	    (uint32_t)h->u.submit.transfer_buffer_length > max_len)
		return -EPROTO;
	return 0;
}

int64_t usbip_submit_payload(const struct usbip_header *h, bool iso)
{
	int64_t n = h->direction == USBIP_DIR_OUT ? h->u.submit.transfer_buffer_length : 0;
	if (!iso)
		return n; /* np and start_frame mean nothing here (C.4) */
	int32_t np = h->u.submit.number_of_packets;
	if (np < 1 || np > USBIP_MAX_ISO_PACKETS)
		return -EPROTO;
	return n + (int64_t)np * USBIP_ISO_DESC_SIZE;
}

void usbip_put_iso_desc(uint8_t out[USBIP_ISO_DESC_SIZE], const struct usbip_iso_desc *d)
{
	put32(out, d->offset);
	put32(out + 4, d->length);
	put32(out + 8, d->actual_length);
	put32(out + 12, (uint32_t)d->status);
}

int usbip_get_iso_desc(const uint8_t in[USBIP_ISO_DESC_SIZE], uint32_t buf_len, struct usbip_iso_desc *d)
{
	d->offset = get32(in);
	d->length = get32(in + 4);
	d->actual_length = 0;
	d->status = 0;
	if (d->offset > buf_len || d->length > buf_len - d->offset)
		return -EPROTO;
	return 0;
}
