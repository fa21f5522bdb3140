/* SPDX-License-Identifier: MIT */
/*
 * Two processes, end to end: a real pvusbd and this frontend on the local
 * transport. Every emulated device enumerates; all four transfer types move
 * verified data; unlink gives one response per id; detach answers every
 * request in flight, then says speed 0, then -ENODEV; re-attach restores.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define FE "guest1"
static struct daemon D;
static char image[128];

static uint8_t pattern_byte(size_t k, uint16_t mps) { return (uint8_t)((k % mps) % 63); }

static bool pattern_ok(const uint8_t *b, size_t n, uint16_t mps)
{
	for (size_t k = 0; k < n; k++)
		if (b[k] != pattern_byte(k, mps))
			return false;
	return true;
}

static void setup(void)
{
	snprintf(image, sizeof(image), "%s/disk.img", D.dir);
	int fd = open(image, O_CREAT | O_RDWR | O_TRUNC, 0600);
	uint8_t block[512];
	for (int i = 0; i < 512; i++)
		block[i] = (uint8_t)(i * 7);
	CHECK(ftruncate(fd, 1 << 20) == 0, "image size");
	CHECK(pwrite(fd, block, 512, 512 * 5) == 512, "seed block 5");
	close(fd);
	CHECK(daemon_ok(&D, "{\"cmd\":\"hc-create\",\"frontend\":\"" FE "\",\"usb-ver\":2,\"ports\":8}"),
	      "hc-create");
	const char *devs[] = {"sourcesink", "tablet", "keyboard", NULL};
	for (int i = 0; devs[i]; i++)
		CHECK(daemon_ok(&D, "{\"cmd\":\"attach\",\"frontend\":\"" FE "\",\"port\":%d,\"device\":\"%s\"}",
				i + 1, devs[i]), "attach %s", devs[i]);
	CHECK(daemon_ok(&D, "{\"cmd\":\"attach\",\"frontend\":\"" FE "\",\"port\":4,\"device\":\"storage:%s\"}",
			image), "attach storage");
}

static void test_enumeration(struct pvusb_front *f, struct pvusb_front_dev devs[5])
{
	static const struct { uint16_t pid; uint8_t speed; const char *product; } want[] = {
		{0x7500, USBIF_SPEED_HIGH, "pvusb Source/Sink"},
		{0x7501, USBIF_SPEED_FULL, "pvusb HID Tablet"},
		{0x7502, USBIF_SPEED_FULL, "pvusb HID Keyboard"},
		{0x7503, USBIF_SPEED_HIGH, "pvusb Mass Storage"},
	};
	for (unsigned p = 1; p <= 4; p++) {
		CHECK(wait_port_speed(f, p, want[p - 1].speed), "port %u announced with speed %u", p,
		      want[p - 1].speed);
		struct pvusb_front_dev *d = &devs[p];
		int rc = pvusb_front_enumerate(f, p, (uint8_t)(10 + p), d);
		CHECK_EQ(rc, 0, "enumerate");
		CHECK_EQ(d->dev_desc[8] | d->dev_desc[9] << 8, 0x1209, "idVendor");
		CHECK_EQ(d->dev_desc[10] | d->dev_desc[11] << 8, want[p - 1].pid, "idProduct");
		CHECK(!strcmp(d->product, want[p - 1].product), "product string '%s'", d->product);
		CHECK(!strcmp(d->manufacturer, "pvusb"), "manufacturer '%s'", d->manufacturer);
	}
	CHECK_EQ(pvusb_front_port_speed(f, 5), 0, "port 5 empty");
	json_object *list, *h = daemon_hc(&D, FE, 0, &list), *ports, *v;
	CHECK(h && json_object_object_get_ex(h, "port-list", &ports), "list shows the controller");
	if (h) {
		json_object *p1 = json_object_array_get_idx(ports, 0);
		CHECK(json_object_object_get_ex(p1, "guest-address", &v) && json_object_get_int(v) == 11,
		      "backend knows the guest address of port 1");
	}
	json_object_put(list);
}

static void test_bulk(struct pvusb_front *f, uint8_t addr)
{
	/* shared (zero-copy) buffer spanning 16 pages, and a bounce buffer */
	uint8_t *shared = pvusb_front_alloc(f, 65536);
	memset(shared, 0xee, 65536);
	CHECK_EQ(pvusb_front_transfer(f, 1, addr, USBIF_PIPE_TYPE_BULK, 0x81, shared, 65536, 2000), 65536,
		 "bulk IN 64 KiB");
	CHECK(pattern_ok(shared, 65536, 512), "bulk IN data follows the pattern");
	uint8_t *heap = malloc(10000);
	memset(heap, 0, 10000);
	CHECK_EQ(pvusb_front_transfer(f, 1, addr, USBIF_PIPE_TYPE_BULK, 0x81, heap, 10000, 2000), 10000,
		 "bulk IN through bounce pages");
	CHECK(pattern_ok(heap, 10000, 512), "bounced data follows the pattern");
	/* an unaligned buffer crosses page boundaries: first segment has an offset */
	CHECK_EQ(pvusb_front_transfer(f, 1, addr, USBIF_PIPE_TYPE_BULK, 0x81, shared + 100, 8000, 2000), 8000,
		 "bulk IN, unaligned");
	CHECK(pattern_ok(shared + 100, 8000, 512), "unaligned data follows the pattern");
	for (size_t k = 0; k < 10000; k++)
		heap[k] = pattern_byte(k, 512);
	CHECK_EQ(pvusb_front_transfer(f, 1, addr, USBIF_PIPE_TYPE_BULK, 0x02, heap, 10000, 2000), 10000,
		 "bulk OUT with the pattern");
	heap[4321] ^= 1;
	CHECK_EQ(pvusb_front_transfer(f, 1, addr, USBIF_PIPE_TYPE_BULK, 0x02, heap, 10000, 2000),
		 USBIF_STATUS_IOERROR, "bulk OUT with a corrupted byte is caught by the sink");
	free(heap);
	/* SHORT_NOT_OK is meaningful only for short reads: a full one passes */
	struct pvusb_urb u = {.port = 1, .devaddr = addr, .type = USBIF_PIPE_TYPE_BULK, .endpoint = 1,
			      .in = true, .flags = USBIF_SHORT_NOT_OK, .length = 4096, .buffer = shared, .id = -1};
	CHECK_EQ(pvusb_front_run(f, &u, 2000), 0, "bulk IN with SHORT_NOT_OK");
	CHECK_EQ(pvusb_front_transfer(f, 1, addr, USBIF_PIPE_TYPE_BULK, 0x8f, shared, 512, 2000),
		 USBIF_STATUS_INVAL, "bulk to an endpoint the device lacks");
}

static void test_control_and_interrupt(struct pvusb_front *f, uint8_t addr)
{
	uint8_t out[300], in[300];
	for (int i = 0; i < 300; i++)
		out[i] = (uint8_t)(i ^ 0x5a);
	CHECK_EQ(pvusb_front_control(f, 1, addr, 0x40, 0x5b, 0, 0, out, 300, 2000), 300, "control OUT data");
	memset(in, 0, sizeof(in));
	CHECK_EQ(pvusb_front_control(f, 1, addr, 0xc0, 0x5c, 0, 0, in, 300, 2000), 300, "control IN data");
	CHECK(!memcmp(in, out, 300), "control loopback returns what was written");
	CHECK_EQ(pvusb_front_control(f, 1, addr, 0xc0, 0x77, 0, 0, in, 4, 2000), USBIF_STATUS_STALL,
		 "unknown vendor request stalls");
	uint8_t buf[64];
	CHECK_EQ(pvusb_front_transfer(f, 1, addr, USBIF_PIPE_TYPE_INT, 0x83, buf, 64, 2000), 64,
		 "interrupt IN");
	CHECK(pattern_ok(buf, 64, 64), "interrupt data follows the pattern");
	/* halt, then clear through CLEAR_FEATURE */
	CHECK_EQ(pvusb_front_control(f, 1, addr, 0x02, USB_REQ_SET_FEATURE, 0, 0x81, NULL, 0, 2000), 0,
		 "SET_FEATURE(HALT)");
	CHECK_EQ(pvusb_front_transfer(f, 1, addr, USBIF_PIPE_TYPE_BULK, 0x81, buf, 64, 2000),
		 USBIF_STATUS_STALL, "halted endpoint stalls");
	CHECK_EQ(pvusb_front_control(f, 1, addr, 0x02, USB_REQ_CLEAR_FEATURE, 0, 0x81, NULL, 0, 2000), 0,
		 "CLEAR_FEATURE(HALT)");
	CHECK_EQ(pvusb_front_transfer(f, 1, addr, USBIF_PIPE_TYPE_BULK, 0x81, buf, 64, 2000), 64,
		 "endpoint works again");
}

static void test_isochronous(struct pvusb_front *f, uint8_t addr)
{
	CHECK_EQ(pvusb_front_control(f, 1, addr, 0x01, USB_REQ_SET_INTERFACE, 1, 0, NULL, 0, 2000), 0,
		 "SET_INTERFACE alt 1");
	enum { NP = 8, PKT = 1024 };
	uint8_t *buf = pvusb_front_alloc(f, NP * PKT);
	struct usbif_iso_desc iso[NP];
	for (int k = 0; k < NP; k++)
		iso[k] = (struct usbif_iso_desc){.offset = (uint32_t)(k * PKT), .length = k == 3 ? 100 : PKT};
	struct pvusb_urb u = {.port = 1, .devaddr = addr, .type = USBIF_PIPE_TYPE_ISOC, .endpoint = 4,
			      .in = true, .length = NP * PKT, .buffer = buf, .npackets = NP, .iso = iso,
			      .interval = 1, .id = -1};
	CHECK_EQ(pvusb_front_run(f, &u, 2000), 0, "isochronous IN");
	CHECK_EQ(u.actual_length, 7 * PKT + 100, "isochronous IN total length");
	CHECK_EQ(u.error_count, 0, "isochronous IN error count");
	bool ok = true;
	for (int k = 0; k < NP; k++)
		ok = ok && iso[k].actual_length == iso[k].length && iso[k].status == 0 &&
		     pattern_ok(buf + iso[k].offset, iso[k].actual_length, 1024);
	CHECK(ok, "each isochronous packet carries the pattern and its own length");
	/* OUT: packet 5 corrupted -> exactly one packet error */
	for (int k = 0; k < NP; k++)
		for (int j = 0; j < PKT; j++)
			buf[k * PKT + j] = pattern_byte((size_t)j, 1024);
	buf[5 * PKT + 10] ^= 0xff;
	for (int k = 0; k < NP; k++)
		iso[k] = (struct usbif_iso_desc){.offset = (uint32_t)(k * PKT), .length = PKT};
	u.in = false;
	u.endpoint = 5;
	CHECK_EQ(pvusb_front_run(f, &u, 2000), 0, "isochronous OUT");
	CHECK_EQ(u.error_count, 1, "one bad isochronous packet");
	CHECK(iso[5].status == USBIF_STATUS_IOERROR && iso[4].status == 0, "the bad packet is the one flagged");
	CHECK_EQ(pvusb_front_transfer(f, 1, addr, USBIF_PIPE_TYPE_ISOC, 0x84, buf, 1024, 2000),
		 -EINVAL, "library refuses isochronous without descriptors");
}

static void test_storage(struct pvusb_front *f, uint8_t addr)
{
	/* READ(10) of block 5 through bulk-only transport */
	uint8_t cbw[31] = {'U', 'S', 'B', 'C', 0x78, 0x56, 0x34, 0x12, 0x00, 0x02, 0, 0, 0x80, 0, 10,
			   0x28, 0, 0, 0, 0, 5, 0, 0, 1, 0};
	uint8_t data[512], csw[13];
	CHECK_EQ(pvusb_front_transfer(f, 4, addr, USBIF_PIPE_TYPE_BULK, 0x02, cbw, 31, 2000), 31, "CBW");
	CHECK_EQ(pvusb_front_transfer(f, 4, addr, USBIF_PIPE_TYPE_BULK, 0x81, data, 512, 2000), 512,
		 "READ(10) data");
	CHECK_EQ(pvusb_front_transfer(f, 4, addr, USBIF_PIPE_TYPE_BULK, 0x81, csw, 13, 2000), 13, "CSW");
	bool ok = true;
	for (int i = 0; i < 512; i++)
		ok = ok && data[i] == (uint8_t)(i * 7);
	CHECK(ok, "block 5 holds what the image file holds");
	CHECK(!memcmp(csw, "USBS\x78\x56\x34\x12", 8) && csw[12] == 0, "CSW passed with our tag");

	/* What a guest's usb-storage sends through xen-hcd: MODE SENSE(6) of all
	 * pages with 192 bytes asked, the data stage with SHORT_NOT_OK. The short
	 * reply must come back as a success (xen-hcd turns -EREMOTEIO into
	 * -ESHUTDOWN, and usb-storage then resets instead of reading the CSW);
	 * the STALL after it and the CSW follow as usual. */
	uint8_t ms[31] = {'U', 'S', 'B', 'C', 0x79, 0x56, 0x34, 0x12, 192, 0, 0, 0, 0x80, 0, 6,
			  0x1a, 0, 0x3f, 0, 192, 0};
	uint8_t msd[192];
	CHECK_EQ(pvusb_front_transfer(f, 4, addr, USBIF_PIPE_TYPE_BULK, 0x02, ms, 31, 2000), 31,
		 "MODE SENSE CBW");
	struct pvusb_urb u = {.port = 4, .devaddr = addr, .type = USBIF_PIPE_TYPE_BULK, .endpoint = 1,
			      .in = true, .flags = USBIF_SHORT_NOT_OK, .length = 192, .buffer = msd, .id = -1};
	CHECK_EQ(pvusb_front_run(f, &u, 2000), 0, "short MODE SENSE data with SHORT_NOT_OK: success");
	CHECK(u.actual_length > 4 && u.actual_length < 192, "MODE SENSE data is short (%d bytes)",
	      u.actual_length);
	CHECK_EQ(pvusb_front_transfer(f, 4, addr, USBIF_PIPE_TYPE_BULK, 0x81, csw, 13, 2000),
		 USBIF_STATUS_STALL, "bulk IN halted after the short reply");
	CHECK_EQ(pvusb_front_control(f, 4, addr, 0x02, 0x01, 0, 0x81, NULL, 0, 2000), 0,
		 "CLEAR_FEATURE(HALT) bulk IN");
	CHECK_EQ(pvusb_front_transfer(f, 4, addr, USBIF_PIPE_TYPE_BULK, 0x81, csw, 13, 2000), 13,
		 "MODE SENSE CSW");
	CHECK(!memcmp(csw, "USBS\x79\x56\x34\x12", 8) && csw[12] == 0 &&
		      (uint32_t)(csw[8] | csw[9] << 8) == 192u - (uint32_t)u.actual_length,
	      "MODE SENSE CSW passed with the residue");
}

static void test_hid_and_unlink(struct pvusb_front *f, uint8_t addr)
{
	uint8_t report[8] = {0};
	struct pvusb_urb u = {.port = 2, .devaddr = addr, .type = USBIF_PIPE_TYPE_INT, .endpoint = 1,
			      .in = true, .length = 6, .buffer = report, .interval = 10, .id = -1};
	CHECK_EQ(pvusb_front_submit(f, &u), 0, "submit tablet interrupt IN");
	pvusb_front_wait(f, 50);
	CHECK(u.id >= 0, "tablet IN waits while nothing moves");
	CHECK(daemon_ok(&D, "{\"cmd\":\"hid-input\",\"frontend\":\"" FE "\",\"port\":2,\"x\":1000,"
			    "\"y\":20000,\"buttons\":1}"), "inject tablet input");
	for (int i = 0; i < 100 && u.id >= 0; i++)
		pvusb_front_wait(f, 20);
	CHECK(u.id < 0 && u.status == 0 && u.actual_length == 6, "tablet report arrived (status %d)", u.status);
	CHECK(report[0] == 1 && (report[1] | report[2] << 8) == 1000 && (report[3] | report[4] << 8) == 20000,
	      "tablet report carries buttons and position");

	/* unlink an IN that is waiting: exactly one response for each id */
	json_object *list, *h = daemon_hc(&D, FE, 0, &list), *v;
	long before = h && json_object_object_get_ex(h, "responses", &v) ? json_object_get_int64(v) : -1;
	json_object_put(list);
	u.id = -1;
	CHECK_EQ(pvusb_front_submit(f, &u), 0, "submit another tablet IN");
	pvusb_front_wait(f, 20);
	CHECK_EQ(pvusb_front_unlink(f, &u), 0, "unlink it");
	for (int i = 0; i < 100 && u.id >= 0; i++)
		pvusb_front_wait(f, 20);
	CHECK(u.id < 0, "the unlinked URB completed");
	CHECK_EQ(u.status, USBIF_STATUS_CONNRESET, "unlinked URB status");
	pvusb_front_wait(f, 50);
	h = daemon_hc(&D, FE, 0, &list);
	long after = h && json_object_object_get_ex(h, "responses", &v) ? json_object_get_int64(v) : -1;
	long inflight = h && json_object_object_get_ex(h, "inflight", &v) ? json_object_get_int(v) : -1;
	json_object_put(list);
	CHECK_EQ(after - before, 2, "one response for the URB and one for the unlink");
	CHECK_EQ(inflight, 0, "nothing left in flight");
	h = daemon_hc(&D, FE, 0, &list);
	CHECK(h && json_object_object_get_ex(h, "maps-live", &v) && json_object_get_int(v) == 0,
	      "every grant unmapped once nothing is in flight");
	json_object_put(list);
	CHECK_EQ(pvusb_front_unlink(f, &u), -ENOENT, "unlinking a finished URB is refused locally");
}

static int completed;
static void count_done(struct pvusb_urb *u) { completed++; }
static int completed_at_gone;
static void on_port(struct pvusb_front *f, unsigned port, uint8_t speed, void *arg)
{
	if (port == 2 && speed == 0)
		completed_at_gone = completed; /* URBs answered before the unplug event */
}

static void test_detach_reattach(struct pvusb_front *f, uint8_t addr)
{
	struct pvusb_urb u[4];
	uint8_t bufs[4][8];
	completed = 0;
	pvusb_front_on_port(f, on_port, NULL);
	for (int i = 0; i < 4; i++) {
		u[i] = (struct pvusb_urb){.port = 2, .devaddr = addr, .type = USBIF_PIPE_TYPE_INT,
					  .endpoint = 1, .in = true, .length = 6, .buffer = bufs[i],
					  .complete = count_done, .id = -1};
		CHECK_EQ(pvusb_front_submit(f, &u[i]), 0, "submit pending IN");
	}
	pvusb_front_wait(f, 20);
	CHECK(daemon_ok(&D, "{\"cmd\":\"detach\",\"frontend\":\"" FE "\",\"port\":2}"), "detach tablet");
	CHECK(wait_port_speed(f, 2, 0), "speed 0 after detach");
	CHECK_EQ(completed, 4, "every in-flight request answered");
	CHECK_EQ(completed_at_gone, 4, "all answered before the speed-0 event");
	bool all_gone = true;
	for (int i = 0; i < 4; i++)
		all_gone = all_gone && u[i].status != 0;
	CHECK(all_gone, "in-flight requests ended with an error status");
	uint8_t b[8];
	CHECK_EQ(pvusb_front_transfer(f, 2, addr, USBIF_PIPE_TYPE_INT, 0x81, b, 6, 2000), USBIF_STATUS_NODEV,
		 "its old address answers -ENODEV");
	CHECK(daemon_ok(&D, "{\"cmd\":\"attach\",\"frontend\":\"" FE "\",\"port\":2,\"device\":\"tablet\"}"),
	      "re-attach");
	CHECK(wait_port_speed(f, 2, USBIF_SPEED_FULL), "port 2 announced again");
	struct pvusb_front_dev d;
	CHECK_EQ(pvusb_front_enumerate(f, 2, 42, &d), 0, "re-attached tablet enumerates");
	CHECK_EQ(d.dev_desc[10] | d.dev_desc[11] << 8, 0x7501, "it is the tablet");
	pvusb_front_on_port(f, NULL, NULL);
}

static void test_reconnect(void)
{
	/* a frontend that goes away and comes back sees its devices again */
	struct pvusb_front *f = front_connect(&D, FE, 0);
	CHECK(f != NULL, "second frontend connects after the first closed");
	if (!f)
		return;
	CHECK(wait_port_speed(f, 1, USBIF_SPEED_HIGH) && wait_port_speed(f, 4, USBIF_SPEED_HIGH),
	      "devices announced to the new frontend");
	struct pvusb_front_dev d;
	CHECK_EQ(pvusb_front_enumerate(f, 1, 1, &d), 0, "enumerates again from address 0");
	pvusb_front_close(f);
}

int main(void)
{
	if (daemon_start(&D) < 0)
		return 1;
	setup();
	struct pvusb_front *f = front_connect(&D, FE, 0);
	CHECK(f != NULL, "frontend connects");
	if (f) {
		struct pvusb_front_dev devs[5];
		test_enumeration(f, devs);
		test_bulk(f, devs[1].addr);
		test_control_and_interrupt(f, devs[1].addr);
		test_isochronous(f, devs[1].addr);
		test_storage(f, devs[4].addr);
		test_hid_and_unlink(f, devs[2].addr);
		test_detach_reattach(f, devs[2].addr);
		CHECK(!pvusb_front_dead(f), "the frontend never saw a protocol error");
		struct pvusb_front *g = front_connect(&D, FE, 0);
		CHECK(g == NULL, "a second frontend on the same controller is refused");
		pvusb_front_close(f);
		usleep(100000);
		test_reconnect();
	}
	unlink(image);
	daemon_stop(&D);
	return t_summary("test_e2e");
}
