/* SPDX-License-Identifier: MIT */
/*
 * libusb-front: a frontend for the libusb back-end's checks in the gadget VM
 * (tests/vm/libusb-vm.sh). It plays the guest on controller 0 of a frontend
 * and drives the gadget on port 1 through pvusbd and the real USB stack.
 *   libusb-front enum FE             enumerate port 1, print the configuration
 *   libusb-front bulk FE BYTES       SourceSink: bulk IN with the pattern checked, bulk OUT
 *   libusb-front iso FE              SourceSink alt 1: iso IN/OUT, packed and with gaps
 *   libusb-front unlink FE           HID: an interrupt IN that never ends, unlinked
 *   libusb-front hotplug FE          bulk INs in flight across an unplug and a replug
 *   libusb-front reattach BUSID      pvusb_libusb_reattach_drivers(BUSID)
 *   libusb-front list                pvusb_hostdev_list()
 * Prints what it checks; exit 0 when every check passed.
 * Build: see tests/vm/libusb-vm.sh (links build-L/src/libpvusb.a).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dev/hostdev.h"
#include "dev/libusb_dev.h"
#include "pvusb/front.h"

static int failures;
#define EXPECT(cond, ...)                                  \
	do {                                               \
		if (!(cond)) {                             \
			failures++;                        \
			printf("FAIL: " __VA_ARGS__);      \
			printf("\n");                      \
		}                                          \
	} while (0)

static const char *sock_path(void)
{
	const char *s = getenv("PVUSB_SOCKET");
	return s ? s : "/tmp/pvusbd.sock";
}

static struct pvusb_front *connect_fe(const char *fe)
{
	struct pvusb_front *f;
	char err[256];
	if (pvusb_front_connect(sock_path(), fe, 0, NULL, &f, err, sizeof(err)) < 0) {
		printf("FAIL: connect: %s\n", err);
		exit(1);
	}
	while (pvusb_front_wait(f, 200) > 0)
		;
	return f;
}

static void enumerate(struct pvusb_front *f, uint8_t addr, struct pvusb_front_dev *d)
{
	int rc = pvusb_front_enumerate(f, 1, addr, d);
	if (rc < 0) {
		printf("FAIL: enumerate port 1: %d\n", rc);
		exit(1);
	}
	printf("enumerated %02x%02x:%02x%02x %s %s speed %u\n", d->dev_desc[9], d->dev_desc[8],
	       d->dev_desc[11], d->dev_desc[10], d->manufacturer, d->product, d->speed);
}

/* Endpoint `want_type` (1 iso, 2 bulk, 3 int) and direction in interface 0 alt `alt`. */
static int find_ep(const struct pvusb_front_dev *d, unsigned alt, unsigned want_type, bool in,
		   uint16_t *mps)
{
	int cur_alt = -1;
	for (unsigned i = 0; i + 2 <= d->config_len && d->config[i] >= 2; i += d->config[i]) {
		const uint8_t *p = d->config + i;
		if (p[1] == 4)
			cur_alt = p[2] == 0 ? p[3] : -1;
		else if (p[1] == 5 && cur_alt == (int)alt && (p[3] & 3) == want_type &&
			 !!(p[2] & 0x80) == in) {
			*mps = (uint16_t)((p[4] | p[5] << 8) & 0x7ff);
			return p[2];
		}
	}
	return -1;
}

static void print_config(const struct pvusb_front_dev *d)
{
	for (unsigned i = 0; i + 2 <= d->config_len && d->config[i] >= 2; i += d->config[i]) {
		const uint8_t *p = d->config + i;
		if (p[1] == 4)
			printf("  interface %u alt %u class %02x\n", p[2], p[3], p[5]);
		else if (p[1] == 5)
			printf("    endpoint 0x%02x type %u mps %u\n", p[2], p[3] & 3,
			       (p[4] | p[5] << 8) & 0x7ff);
	}
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmd_enum(const char *fe)
{
	struct pvusb_front *f = connect_fe(fe);
	struct pvusb_front_dev d;
	enumerate(f, 1, &d);
	print_config(&d);
	pvusb_front_close(f);
	return 0;
}

static bool pattern_ok(const uint8_t *b, size_t n, uint16_t mps)
{
	for (size_t k = 0; k < n; k++)
		if (b[k] != (uint8_t)((k % mps) % 63))
			return false;
	return true;
}

static int cmd_bulk(const char *fe, size_t bytes)
{
	struct pvusb_front *f = connect_fe(fe);
	struct pvusb_front_dev d;
	enumerate(f, 1, &d);
	uint16_t mps_in = 0, mps_out = 0;
	int ep_in = find_ep(&d, 0, 2, true, &mps_in), ep_out = find_ep(&d, 0, 2, false, &mps_out);
	EXPECT(ep_in > 0 && ep_out > 0, "bulk endpoints in alt 0");
	if (ep_in < 0 || ep_out < 0)
		return 1;
	const uint32_t chunk = 16384;
	uint8_t *buf = pvusb_front_alloc(f, chunk);
	uint8_t *heap = malloc(chunk + 1); /* not shared memory: the frontend bounces it */
	double t0 = now_s();
	size_t done = 0;
	bool pattern = true;
	for (; done < bytes; done += chunk) {
		uint8_t *b = (done / chunk) % 2 ? heap + 1 : buf; /* also an unaligned buffer */
		int rc = pvusb_front_transfer(f, 1, 1, USBIF_PIPE_TYPE_BULK, (uint8_t)ep_in, b, chunk, 5000);
		if (rc != (int)chunk) {
			EXPECT(0, "bulk IN returned %d, want %u", rc, chunk);
			break;
		}
		pattern = pattern && pattern_ok(b, chunk, mps_in);
	}
	double t1 = now_s();
	EXPECT(pattern, "bulk IN data follows the SourceSink pattern");
	printf("bulk IN %zu bytes: %.1f MB/s\n", done, done / (t1 - t0) / 1e6);
	for (size_t k = 0; k < chunk; k++)
		buf[k] = (uint8_t)((k % mps_out) % 63);
	for (done = 0; done < bytes; done += chunk) {
		int rc = pvusb_front_transfer(f, 1, 1, USBIF_PIPE_TYPE_BULK, (uint8_t)ep_out, buf, chunk, 5000);
		if (rc != (int)chunk) {
			EXPECT(0, "bulk OUT returned %d, want %u", rc, chunk);
			break;
		}
	}
	printf("bulk OUT %zu bytes: %.1f MB/s\n", done, done / (now_s() - t1) / 1e6);
	/* a short read: 100 bytes asked of a 512-byte-packet endpoint is a babble */
	int rc = pvusb_front_transfer(f, 1, 1, USBIF_PIPE_TYPE_BULK, (uint8_t)ep_in, buf, 100, 5000);
	printf("bulk IN of 100 bytes: %d\n", rc);
	EXPECT(rc == 100 || rc == USBIF_STATUS_BABBLE, "100-byte bulk IN: 100 or -75, got %d", rc);
	/* GET_STATUS on the endpoint, CLEAR_FEATURE(HALT) through libusb_clear_halt */
	uint8_t st[2];
	rc = pvusb_front_control(f, 1, 1, 0x82, USB_REQ_GET_STATUS, 0, (uint16_t)ep_in, st, 2, 2000);
	EXPECT(rc == 2 && st[0] == 0, "GET_STATUS(endpoint) = %d", rc);
	rc = pvusb_front_control(f, 1, 1, 0x02, USB_REQ_CLEAR_FEATURE, 0, (uint16_t)ep_in, NULL, 0, 2000);
	EXPECT(rc == 0, "CLEAR_FEATURE(ENDPOINT_HALT) = %d", rc);
	rc = pvusb_front_transfer(f, 1, 1, USBIF_PIPE_TYPE_BULK, (uint8_t)ep_in, buf, chunk, 5000);
	EXPECT(rc == (int)chunk && pattern_ok(buf, chunk, mps_in), "bulk IN after clear halt: %d", rc);
	/* SET_CONFIGURATION again goes through libusb_set_configuration */
	rc = pvusb_front_control(f, 1, 1, 0x00, USB_REQ_SET_CONFIGURATION, 1, 0, NULL, 0, 5000);
	EXPECT(rc == 0, "SET_CONFIGURATION(1) = %d", rc);
	rc = pvusb_front_transfer(f, 1, 1, USBIF_PIPE_TYPE_BULK, (uint8_t)ep_in, buf, chunk, 5000);
	EXPECT(rc == (int)chunk, "bulk IN after SET_CONFIGURATION: %d", rc);
	/* a zero-length bulk OUT */
	rc = pvusb_front_transfer(f, 1, 1, USBIF_PIPE_TYPE_BULK, (uint8_t)ep_out, buf, 0, 5000);
	EXPECT(rc == 0, "zero-length bulk OUT: %d", rc);
	/* control OUT and IN data stages: f_sourcesink's vendor loopback 0x5b/0x5c */
	uint8_t out[200], back[256];
	for (unsigned i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i * 7 + 3);
	rc = pvusb_front_control(f, 1, 1, 0x40, 0x5b, 0, 0, out, sizeof(out), 2000);
	EXPECT(rc == (int)sizeof(out), "vendor control OUT of 200 bytes: %d", rc);
	memset(back, 0, sizeof(back));
	rc = pvusb_front_control(f, 1, 1, 0xc0, 0x5c, 0, 0, back, sizeof(out), 2000);
	EXPECT(rc == (int)sizeof(out) && memcmp(out, back, sizeof(out)) == 0,
	       "vendor control IN reads the 200 bytes back: %d", rc);
	/* a stall: a vendor request SourceSink does not know */
	rc = pvusb_front_control(f, 1, 1, 0xc0, 0x77, 0, 0, buf, 8, 2000);
	printf("unknown vendor request: %d\n", rc);
	EXPECT(rc == USBIF_STATUS_STALL, "unknown vendor request stalls: %d", rc);
	free(heap);
	pvusb_front_close(f);
	return failures ? 1 : 0;
}

/* Iso through libusb: one URB of n packets, with `gap` bytes between them. */
static void iso_round(struct pvusb_front *f, int ep, bool in, uint16_t mps, uint32_t gap)
{
	enum { N = 8 };
	struct usbif_iso_desc iso[N];
	uint32_t stride = mps + gap;
	uint8_t *buf = pvusb_front_alloc(f, stride * N);
	for (unsigned k = 0; k < N; k++) {
		iso[k] = (struct usbif_iso_desc){.offset = k * stride, .length = mps};
		if (!in)
			for (unsigned j = 0; j < mps; j++)
				buf[k * stride + j] = (uint8_t)((j % mps) % 63);
	}
	if (in)
		memset(buf, 0xee, stride * N);
	struct pvusb_urb u = {.port = 1, .devaddr = 1, .endpoint = (uint8_t)(ep & 0x0f),
			      .type = USBIF_PIPE_TYPE_ISOC, .in = in, .length = stride * N,
			      .buffer = buf, .interval = 1, .npackets = N, .iso = iso};
	int rc = pvusb_front_run(f, &u, 5000);
	unsigned good = 0, data_ok = 1;
	for (unsigned k = 0; k < N; k++) {
		good += iso[k].status == 0 && iso[k].actual_length > 0;
		if (in && iso[k].actual_length)
			data_ok &= pattern_ok(buf + k * stride, iso[k].actual_length, mps);
		if (in && gap)
			data_ok &= buf[k * stride + mps] == 0xee; /* the gaps untouched */
	}
	printf("iso %s gap %u: status %d actual %u errors %d, %u/%u packets with data, data %s\n",
	       in ? "IN" : "OUT", gap, rc, u.actual_length, u.error_count, good, N,
	       data_ok ? "ok" : "BAD");
	EXPECT(rc == 0, "iso %s status %d", in ? "IN" : "OUT", rc);
	EXPECT(good > 0, "iso %s moved data", in ? "IN" : "OUT");
	EXPECT(data_ok, "iso %s data/gaps", in ? "IN" : "OUT");
}

static int cmd_iso(const char *fe)
{
	struct pvusb_front *f = connect_fe(fe);
	struct pvusb_front_dev d;
	enumerate(f, 1, &d);
	print_config(&d);
	uint16_t mps_in = 0, mps_out = 0;
	int ep_in = find_ep(&d, 1, 1, true, &mps_in), ep_out = find_ep(&d, 1, 1, false, &mps_out);
	int rc;
	if (ep_in < 0 || ep_out < 0) {
		/* f_sourcesink drops alt 1 when the UDC has no iso endpoints (dummy_hcd) */
		printf("SKIP: the gadget has no isochronous alt setting 1\n");
		/* still through prepare_iso: an iso URB for a bulk endpoint, which
		 * usbfs refuses; it must come back once, with an error */
		uint16_t mps = 0;
		int bulk_in = find_ep(&d, 0, 2, true, &mps);
		struct usbif_iso_desc iso[4];
		uint8_t *buf = pvusb_front_alloc(f, 4096);
		for (unsigned k = 0; k < 4; k++)
			iso[k] = (struct usbif_iso_desc){.offset = k * 1000, .length = 512};
		struct pvusb_urb u = {.port = 1, .devaddr = 1, .endpoint = (uint8_t)(bulk_in & 0x0f),
				      .type = USBIF_PIPE_TYPE_ISOC, .in = true, .length = 4096,
				      .buffer = buf, .interval = 1, .npackets = 4, .iso = iso};
		rc = pvusb_front_run(f, &u, 5000);
		printf("iso URB for bulk endpoint 0x%02x: %d\n", bulk_in, rc);
		EXPECT(rc < 0 && rc != -ETIMEDOUT, "iso URB to a bulk endpoint fails: %d", rc);
	} else {
		rc = pvusb_front_control(f, 1, 1, 0x01, USB_REQ_SET_INTERFACE, 1, 0, NULL, 0, 5000);
		EXPECT(rc == 0, "SET_INTERFACE(0, alt 1) = %d", rc);
		iso_round(f, ep_in, true, mps_in, 0);
		iso_round(f, ep_in, true, mps_in, 100);
		iso_round(f, ep_out, false, mps_out, 0);
		iso_round(f, ep_out, false, mps_out, 100);
	}
	rc = pvusb_front_control(f, 1, 1, 0x01, USB_REQ_SET_INTERFACE, 0, 0, NULL, 0, 5000);
	EXPECT(rc == 0, "SET_INTERFACE(0, alt 0) = %d", rc);
	rc = pvusb_front_control(f, 1, 1, 0x01, USB_REQ_SET_INTERFACE, 9, 0, NULL, 0, 5000);
	EXPECT(rc == USBIF_STATUS_STALL, "SET_INTERFACE(0, alt 9) stalls: %d", rc);
	pvusb_front_close(f);
	return failures ? 1 : 0;
}

static int completions;
static void count_completion(struct pvusb_urb *u) { completions++; }

static int cmd_unlink(const char *fe)
{
	struct pvusb_front *f = connect_fe(fe);
	struct pvusb_front_dev d;
	enumerate(f, 1, &d);
	uint16_t mps = 0;
	int ep = find_ep(&d, 0, 3, true, &mps);
	EXPECT(ep > 0, "interrupt IN endpoint");
	if (ep < 0)
		return 1;
	uint8_t *buf = pvusb_front_alloc(f, 64);
	for (int round = 0; round < 3; round++) {
		struct pvusb_urb u = {.port = 1, .devaddr = 1, .endpoint = (uint8_t)(ep & 0x0f),
				      .type = USBIF_PIPE_TYPE_INT, .in = true, .length = mps,
				      .buffer = buf, .interval = 8, .complete = count_completion};
		completions = 0;
		int rc = pvusb_front_submit(f, &u);
		EXPECT(rc == 0, "submit interrupt IN: %d", rc);
		pvusb_front_wait(f, 200);
		EXPECT(completions == 0, "interrupt IN still pending after 200 ms");
		rc = pvusb_front_unlink(f, &u);
		EXPECT(rc == 0, "unlink: %d", rc);
		for (int i = 0; i < 20 && completions == 0; i++)
			pvusb_front_wait(f, 100);
		pvusb_front_wait(f, 100); /* a second completion would show here */
		printf("unlinked interrupt IN: %d completion(s), status %d\n", completions, u.status);
		EXPECT(completions == 1, "exactly one completion, got %d", completions);
		EXPECT(u.status != 0, "cancelled URB has an error status");
	}
	pvusb_front_close(f);
	return failures ? 1 : 0;
}

/* Bulk INs in flight while the gadget is unplugged; then it comes back. */
static int hp_ok, hp_err, hp_other;
static void hp_complete(struct pvusb_urb *u)
{
	if (u->status == 0)
		hp_ok++;
	else if (u->status == USBIF_STATUS_NODEV || u->status == USBIF_STATUS_SHUTDOWN ||
		 u->status == USBIF_STATUS_IOERROR)
		hp_err++;
	else
		hp_other++;
	u->id = -1;
}

static int cmd_hotplug(const char *fe)
{
	struct pvusb_front *f = connect_fe(fe);
	struct pvusb_front_dev d;
	enumerate(f, 1, &d);
	uint16_t mps = 0;
	int ep = find_ep(&d, 0, 2, true, &mps);
	enum { NURB = 4, LEN = 16384 };
	struct pvusb_urb urbs[NURB];
	int inflight = 0;
	bool gone = false;
	for (int i = 0; i < NURB; i++)
		urbs[i] = (struct pvusb_urb){.port = 1, .devaddr = 1, .endpoint = (uint8_t)(ep & 0x0f),
					     .type = USBIF_PIPE_TYPE_BULK, .in = true, .length = LEN,
					     .buffer = pvusb_front_alloc(f, LEN), .complete = hp_complete,
					     .id = -1};
	printf("armed\n");
	fflush(stdout);
	double deadline = now_s() + 20;
	while (now_s() < deadline) {
		gone = pvusb_front_port_speed(f, 1) == 0;
		inflight = 0;
		for (int i = 0; i < NURB; i++) {
			if (urbs[i].id >= 0)
				inflight++;
			else if (!gone && pvusb_front_submit(f, &urbs[i]) == 0)
				inflight++;
		}
		if (gone && inflight == 0)
			break;
		pvusb_front_wait(f, 50);
	}
	printf("gone: speed 0 seen %d, in flight %d, completions ok %d error %d other %d\n", gone,
	       inflight, hp_ok, hp_err, hp_other);
	fflush(stdout);
	EXPECT(gone, "the port went to speed 0");
	EXPECT(inflight == 0, "every URB in flight was answered");
	EXPECT(hp_other == 0, "only E.6 statuses for URBs cut by the unplug");
	/* after the unplug, the address is unknown: -ENODEV */
	int rc = pvusb_front_transfer(f, 1, 1, USBIF_PIPE_TYPE_BULK, (uint8_t)ep, urbs[0].buffer, 512, 2000);
	EXPECT(rc == USBIF_STATUS_NODEV, "transfer after the unplug: %d", rc);

	deadline = now_s() + 20;
	while (now_s() < deadline && pvusb_front_port_speed(f, 1) == 0)
		pvusb_front_wait(f, 100);
	uint8_t speed = pvusb_front_port_speed(f, 1);
	printf("back: speed %u\n", speed);
	EXPECT(speed == USBIF_SPEED_HIGH, "the port came back at high speed");
	if (speed) {
		enumerate(f, 2, &d);
		rc = pvusb_front_transfer(f, 1, 2, USBIF_PIPE_TYPE_BULK, (uint8_t)ep, urbs[0].buffer, LEN, 5000);
		EXPECT(rc == LEN && pattern_ok(urbs[0].buffer, LEN, mps), "bulk IN after replug: %d", rc);
	}
	pvusb_front_close(f);
	return failures ? 1 : 0;
}

static int cmd_list(void)
{
	struct pvusb_hostdev *l;
	size_t n;
	int rc = pvusb_hostdev_list(&l, &n);
	if (rc < 0) {
		printf("FAIL: pvusb_hostdev_list: %d\n", rc);
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		const struct pvusb_hostdev *h = &l[i];
		printf("%-8s bus %u addr %u %04x:%04x class %02x%s speed %u (%u Mb/s) serial '%s' "
		       "'%s' '%s' interfaces", h->busid, h->bus, h->addr, h->vendor, h->product,
		       h->dev_class, h->is_hub ? " hub" : "", h->speed, h->speed_mbps, h->serial,
		       h->vendor_name, h->product_name);
		for (unsigned k = 0; k < h->nifaces; k++)
			printf(" %02x", h->iface_class[k]);
		printf("\n");
	}
	pvusb_hostdev_free(l);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "list"))
		return cmd_list();
	if (argc < 3) {
		fprintf(stderr, "usage: libusb-front enum|bulk|iso|unlink|hotplug FE [BYTES] | reattach BUSID\n");
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "enum"))
		return cmd_enum(argv[2]);
	if (!strcmp(cmd, "bulk"))
		return cmd_bulk(argv[2], argc > 3 ? strtoul(argv[3], NULL, 0) : 1 << 20);
	if (!strcmp(cmd, "iso"))
		return cmd_iso(argv[2]);
	if (!strcmp(cmd, "unlink"))
		return cmd_unlink(argv[2]);
	if (!strcmp(cmd, "hotplug"))
		return cmd_hotplug(argv[2]);
	if (!strcmp(cmd, "reattach")) {
		int rc = pvusb_libusb_reattach_drivers(argv[2]);
		printf("reattach %s: %d\n", argv[2], rc);
		return rc < 0;
	}
	fprintf(stderr, "libusb-front: unknown command %s\n", cmd);
	return 2;
}
