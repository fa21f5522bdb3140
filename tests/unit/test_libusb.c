/* SPDX-License-Identifier: MIT */
/*
 * The libusb back-end's pieces that need no device: libusb results as usbif
 * statuses (spec E.3), isochronous packing between usbif's per-packet offsets
 * and libusb's back-to-back packets, and usb.ids parsing on a fixture.
 *   test_libusb DATA_DIR   (tests/unit/data/usbids)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dev/hostdev.h"
#include "dev/libusb_dev.h"

#include "check.h"

static void test_transfer_status(void)
{
	static const struct {
		int libusb;
		int32_t usbif;
	} table[] = {
		{LIBUSB_TRANSFER_COMPLETED, 0},
		{LIBUSB_TRANSFER_STALL, -32},
		{LIBUSB_TRANSFER_NO_DEVICE, -19},
		{LIBUSB_TRANSFER_OVERFLOW, -75},
		{LIBUSB_TRANSFER_ERROR, -71},
		{LIBUSB_TRANSFER_TIMED_OUT, -71},
		{LIBUSB_TRANSFER_CANCELLED, -71},
		{42, -108},
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		CHECK_EQ(pvusb_libusb_xfer_status(table[i].libusb), table[i].usbif);
}

static void test_error_status(void)
{
	CHECK_EQ(pvusb_libusb_error_status(LIBUSB_SUCCESS), 0);
	CHECK_EQ(pvusb_libusb_error_status(LIBUSB_ERROR_PIPE), -32);
	CHECK_EQ(pvusb_libusb_error_status(LIBUSB_ERROR_NOT_FOUND), -32);
	CHECK_EQ(pvusb_libusb_error_status(LIBUSB_ERROR_INVALID_PARAM), -32);
	CHECK_EQ(pvusb_libusb_error_status(LIBUSB_ERROR_NO_DEVICE), -19);
	CHECK_EQ(pvusb_libusb_error_status(LIBUSB_ERROR_OVERFLOW), -75);
	CHECK_EQ(pvusb_libusb_error_status(LIBUSB_ERROR_IO), -71);
	CHECK_EQ(pvusb_libusb_error_status(LIBUSB_ERROR_TIMEOUT), -71);
	CHECK_EQ(pvusb_libusb_error_status(LIBUSB_ERROR_NO_MEM), -108);
	CHECK_EQ(pvusb_libusb_error_status(LIBUSB_ERROR_OTHER), -108);
}

/* A transfer whose buffer is two separate runs (not contig), like a guest
 * buffer whose pages the transport could not map side by side. */
struct split_buf {
	uint8_t a[100], b[100];
	struct usbif_iso_desc iso[4];
	struct pvusb_xfer x;
};

static void split_init(struct split_buf *s, bool in)
{
	memset(s, 0, sizeof(*s));
	s->x.type = USBIF_PIPE_TYPE_ISOC;
	s->x.in = in;
	s->x.length = 200;
	s->x.niov = 2;
	s->x.iov[0] = (struct pvusb_iov){s->a, 100};
	s->x.iov[1] = (struct pvusb_iov){s->b, 100};
	s->x.iso = s->iso;
	s->x.npackets = 3;
	/* packets with gaps, one crossing the run boundary */
	s->iso[0] = (struct usbif_iso_desc){.offset = 0, .length = 10};
	s->iso[1] = (struct usbif_iso_desc){.offset = 90, .length = 20};
	s->iso[2] = (struct usbif_iso_desc){.offset = 150, .length = 30};
}

static uint8_t flat_byte(const struct split_buf *s, uint32_t off)
{
	return off < 100 ? s->a[off] : s->b[off - 100];
}

static void test_iso_layout(void)
{
	struct split_buf s;
	uint32_t total;
	int packed;
	split_init(&s, false);
	CHECK_EQ(pvusb_iso_layout(&s.x, &total, &packed), 0);
	CHECK_EQ(total, 60);
	CHECK_EQ(packed, 0);

	/* back to back from 0: libusb can use the guest's buffer as it is */
	s.iso[1].offset = 10;
	s.iso[2].offset = 30;
	CHECK_EQ(pvusb_iso_layout(&s.x, &total, &packed), 0);
	CHECK_EQ(packed, 1);

	/* back to back but starting at 5: not packed */
	s.iso[0].offset = 5;
	CHECK_EQ(pvusb_iso_layout(&s.x, &total, &packed), 0);
	CHECK_EQ(packed, 0);

	/* overlapping packets that add up to more than the buffer: refused */
	for (int k = 0; k < 3; k++)
		s.iso[k] = (struct usbif_iso_desc){.offset = 0, .length = 100};
	CHECK_EQ(pvusb_iso_layout(&s.x, &total, &packed), -EINVAL);

	s.x.npackets = 0;
	CHECK_EQ(pvusb_iso_layout(&s.x, &total, &packed), 0);
	CHECK_EQ(total, 0);
}

static void test_iso_pack(void)
{
	struct split_buf s;
	split_init(&s, false);
	for (uint32_t i = 0; i < 100; i++) {
		s.a[i] = (uint8_t)i;
		s.b[i] = (uint8_t)(100 + i);
	}
	uint8_t packed[60];
	memset(packed, 0xee, sizeof(packed));
	pvusb_iso_pack(&s.x, packed);
	int ok = 1;
	for (uint32_t k = 0, pos = 0; k < 3; k++)
		for (uint32_t i = 0; i < s.iso[k].length; i++, pos++)
			ok &= packed[pos] == (uint8_t)(s.iso[k].offset + i);
	CHECK_EQ(ok, 1);
}

static void test_iso_unpack_in(void)
{
	struct split_buf s;
	split_init(&s, true);
	uint8_t src[60];
	for (uint32_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(0x80 + i);
	struct libusb_iso_packet_descriptor pk[3] = {
		{.length = 10, .actual_length = 10, .status = LIBUSB_TRANSFER_COMPLETED},
		/* short packet: only 7 bytes, the rest of the guest's packet untouched */
		{.length = 20, .actual_length = 7, .status = LIBUSB_TRANSFER_COMPLETED},
		/* a lying length beyond the packet: trusted only up to what was asked */
		{.length = 30, .actual_length = 5000, .status = LIBUSB_TRANSFER_ERROR},
	};
	int32_t errors = -1;
	uint32_t total = pvusb_iso_unpack(&s.x, src, pk, &errors);
	CHECK_EQ(total, 10 + 7 + 30);
	CHECK_EQ(errors, 1);
	CHECK_EQ(s.iso[0].actual_length, 10);
	CHECK_EQ(s.iso[0].status, 0);
	CHECK_EQ(s.iso[1].actual_length, 7);
	CHECK_EQ(s.iso[2].actual_length, 30);
	CHECK_EQ(s.iso[2].status, -71);
	/* packet k's data comes from libusb's slot at the sum of asked lengths */
	CHECK_EQ(flat_byte(&s, 0), 0x80);
	CHECK_EQ(flat_byte(&s, 9), 0x80 + 9);
	CHECK_EQ(flat_byte(&s, 90), 0x80 + 10);
	CHECK_EQ(flat_byte(&s, 96), 0x80 + 16);
	CHECK_EQ(flat_byte(&s, 97), 0); /* beyond the short packet */
	CHECK_EQ(flat_byte(&s, 150), 0x80 + 30);
	CHECK_EQ(flat_byte(&s, 179), 0x80 + 59);
	CHECK_EQ(flat_byte(&s, 180), 0);
	CHECK_EQ(flat_byte(&s, 10), 0); /* the gaps stay as they were */
}

static void test_iso_unpack_in_place(void)
{
	struct split_buf s;
	split_init(&s, false);
	memset(s.a, 0x11, sizeof(s.a));
	struct libusb_iso_packet_descriptor pk[3] = {
		{.length = 10, .actual_length = 10, .status = LIBUSB_TRANSFER_COMPLETED},
		{.length = 20, .actual_length = 20, .status = LIBUSB_TRANSFER_STALL},
		{.length = 30, .actual_length = 30, .status = LIBUSB_TRANSFER_COMPLETED},
	};
	int32_t errors;
	uint32_t total = pvusb_iso_unpack(&s.x, NULL, pk, &errors);
	CHECK_EQ(total, 60);
	CHECK_EQ(errors, 1);
	CHECK_EQ(s.iso[1].status, -32);
	CHECK_EQ(s.a[0], 0x11); /* nothing copied when src is NULL */
}

static void test_usbids(const char *dir)
{
	char path[512], v[128], p[128];
	snprintf(path, sizeof(path), "%s/usb.ids", dir);

	CHECK_EQ(pvusb_usbids_lookup(path, 0x1d6b, 0x0104, v, sizeof(v), p, sizeof(p)), 3);
	CHECK_STR(v, "Linux Foundation");
	CHECK_STR(p, "Multifunction Composite Gadget");

	/* a comment inside the block, upper-case hex */
	CHECK_EQ(pvusb_usbids_lookup(path, 0x1d6b, 0xabcd, v, sizeof(v), p, sizeof(p)), 3);
	CHECK_STR(p, "Upper-case product id");
	CHECK_EQ(pvusb_usbids_lookup(path, 0xffee, 0x0001, v, sizeof(v), p, sizeof(p)), 1);
	CHECK_STR(v, "Vendor With No Products");

	/* interface lines are not products; the next vendor's products are not ours */
	strcpy(p, "unchanged");
	CHECK_EQ(pvusb_usbids_lookup(path, 0x1d6b, 0x0000, v, sizeof(v), p, sizeof(p)), 1);
	CHECK_STR(p, "unchanged");
	CHECK_EQ(pvusb_usbids_lookup(path, 0x1209, 0x0104, v, sizeof(v), p, sizeof(p)), 1);
	CHECK_EQ(pvusb_usbids_lookup(path, 0x1d6c, 0x0104, v, sizeof(v), p, sizeof(p)), 3);
	CHECK_STR(p, "Not the Linux Foundation gadget");

	/* the class section ("C 09  Hub") is no vendor 0x0c09 */
	CHECK_EQ(pvusb_usbids_lookup(path, 0x0c09, 0x0000, v, sizeof(v), p, sizeof(p)), 0);
	CHECK_EQ(pvusb_usbids_lookup(path, 0x4242, 0x0001, v, sizeof(v), p, sizeof(p)), 0);

	/* names are cut to the caller's buffer */
	char small[8];
	CHECK_EQ(pvusb_usbids_lookup(path, 0x0001, 0x7778, small, sizeof(small), p, sizeof(p)), 3);
	CHECK_STR(small, "Fry's E");

	snprintf(path, sizeof(path), "%s/no-such-file", dir);
	CHECK_EQ(pvusb_usbids_lookup(path, 0x1d6b, 0x0104, v, sizeof(v), p, sizeof(p)), -ENOENT);
}

static void test_names_fallback(void)
{
	char v[128], p[128];
	/* an id no database knows and no sysfs device: hex, never empty */
	pvusb_hostdev_names(0xfffe, 0xfffd, NULL, v, sizeof(v), p, sizeof(p));
	CHECK_STR(v, "fffe");
	CHECK_STR(p, "fffd");
	char buf[16];
	CHECK_EQ(pvusb_hostdev_sysfs_attr("../x", "serial", buf, sizeof(buf)), -EINVAL);
	CHECK_EQ(pvusb_hostdev_sysfs_attr("1-1", "../../x", buf, sizeof(buf)), -EINVAL);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: test_libusb DATA_DIR\n");
		return 2;
	}
	test_transfer_status();
	test_error_status();
	test_iso_layout();
	test_iso_pack();
	test_iso_unpack_in();
	test_iso_unpack_in_place();
	test_usbids(argv[1]);
	test_names_fallback();
	printf("libusb: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
