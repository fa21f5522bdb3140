/* SPDX-License-Identifier: MIT */
/* usbmon pcap records (usbmon.h): the layout of spec section D, little-endian. */
#include <string.h>

#include "pvusb/usbmon.h"

static void le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void usbmon_put_pcap_header(uint8_t out[USBMON_PCAP_HEADER_SIZE])
{
	le32(out, 0xa1b2c3d4); /* microsecond timestamps */
	le16(out + 4, 2);
	le16(out + 6, 4);
	le32(out + 8, 0);
	le32(out + 12, 0);
	le32(out + 16, USBMON_SNAPLEN);
	le32(out + 20, USBMON_LINKTYPE);
}

size_t usbmon_record_size(const struct usbmon_event *e)
{
	return USBMON_RECORD_HEADER_SIZE + USBMON_HEADER_SIZE + (size_t)e->ndesc * USBMON_ISO_DESC_SIZE +
	       (e->data ? e->data_len : 0);
}

/* '<' an IN submit, '>' an OUT completion: no data by direction (D.3). */
static uint8_t flag_data(const struct usbmon_event *e)
{
	if (e->type == 'E')
		return 'E';
	if (e->data)
		return 0;
	return (e->epnum & 0x80) ? '<' : '>';
}

size_t usbmon_put_record(uint8_t *out, const struct usbmon_event *e)
{
	size_t total = usbmon_record_size(e);
	uint32_t cap = (uint32_t)(total - USBMON_RECORD_HEADER_SIZE);
	le32(out, (uint32_t)e->ts_sec);
	le32(out + 4, (uint32_t)e->ts_usec);
	le32(out + 8, cap);
	le32(out + 12, cap);
	uint8_t *h = out + USBMON_RECORD_HEADER_SIZE;
	memset(h, 0, USBMON_HEADER_SIZE);
	le64(h, e->id);
	h[8] = (uint8_t)e->type;
	h[9] = e->xfer_type;
	h[10] = e->epnum;
	h[11] = e->devnum;
	le16(h + 12, e->busnum);
	h[14] = e->has_setup ? 0 : '-';
	h[15] = flag_data(e);
	le64(h + 16, (uint64_t)e->ts_sec);
	le32(h + 24, (uint32_t)e->ts_usec);
	le32(h + 28, (uint32_t)e->status);
	le32(h + 32, e->length);
	le32(h + 36, cap - USBMON_HEADER_SIZE);
	if (e->has_setup) {
		memcpy(h + 40, e->setup, 8);
	} else if (e->xfer_type == 0) {
		le32(h + 40, (uint32_t)e->error_count);
		le32(h + 44, e->ndesc); /* numdesc == ndesc: tshark finds the data by it (D.4) */
	}
	if (e->xfer_type == 0 || e->xfer_type == 1)
		le32(h + 48, (uint32_t)e->interval);
	if (e->xfer_type == 0)
		le32(h + 52, (uint32_t)e->start_frame);
	le32(h + 56, e->xfer_flags);
	le32(h + 60, e->ndesc);
	uint8_t *p = h + USBMON_HEADER_SIZE;
	for (uint32_t k = 0; k < e->ndesc; k++, p += USBMON_ISO_DESC_SIZE) {
		le32(p, (uint32_t)e->iso[k].status);
		le32(p + 4, e->iso[k].offset);
		le32(p + 8, e->iso[k].length);
		le32(p + 12, 0);
	}
	if (e->data && e->data_len)
		memcpy(p, e->data, e->data_len);
	return total;
}
