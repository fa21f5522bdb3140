/* SPDX-License-Identifier: MIT */
/* pvusb-demo: the main job on the embedded default. As the frontend of a
 * controller it enumerates every device, prints the guest's view, reads a
 * block from the first mass-storage device and moves data through the
 * source/sink, printing MB/s. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pvusb/front.h"
#include "pvusb/local.h"

#define INFLIGHT 16
#define CHUNK 65536

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int read_block(struct pvusb_front *f, const struct pvusb_front_dev *d)
{
	uint8_t cbw[31] = {'U', 'S', 'B', 'C', 1, 0, 0, 0, 0x00, 0x02, 0, 0, 0x80, 0, 10, 0x28};
	cbw[23] = 1; /* READ(10) LBA 0, one block */
	uint8_t data[512], csw[13];
	if (pvusb_front_transfer(f, d->port, d->addr, USBIF_PIPE_TYPE_BULK, 0x02, cbw, 31, 2000) != 31 ||
	    pvusb_front_transfer(f, d->port, d->addr, USBIF_PIPE_TYPE_BULK, 0x81, data, 512, 2000) != 512 ||
	    pvusb_front_transfer(f, d->port, d->addr, USBIF_PIPE_TYPE_BULK, 0x81, csw, 13, 2000) != 13 ||
	    memcmp(csw, "USBS", 4) || csw[12] != 0)
		return -1;
	printf("storage: read block 0 (512 bytes) on port %u, CSW status passed\n", d->port);
	return 0;
}

struct stream {
	struct pvusb_front *f;
	uint64_t done, submitted, want;
	int errors;
};

static void resubmit(struct pvusb_urb *u)
{
	struct stream *s = u->user;
	if (u->status != 0)
		s->errors++;
	s->done += u->actual_length;
	if (!s->errors && s->submitted < s->want) {
		s->submitted += CHUNK;
		pvusb_front_submit(s->f, u);
	}
}

static int stream(struct pvusb_front *f, const struct pvusb_front_dev *d, uint64_t bytes)
{
	struct stream s = {.f = f, .want = bytes, .submitted = (uint64_t)CHUNK * INFLIGHT};
	struct pvusb_urb u[INFLIGHT];
	for (int i = 0; i < INFLIGHT; i++) {
		u[i] = (struct pvusb_urb){.port = d->port, .devaddr = d->addr, .type = USBIF_PIPE_TYPE_BULK,
					  .endpoint = 1, .in = true, .length = CHUNK,
					  .buffer = pvusb_front_alloc(f, CHUNK), .complete = resubmit,
					  .user = &s, .id = -1};
		pvusb_front_submit(f, &u[i]);
	}
	double t0 = now();
	for (;;) {
		bool busy = false;
		for (int i = 0; i < INFLIGHT; i++)
			busy = busy || u[i].id >= 0;
		if (!busy)
			break;
		if (pvusb_front_wait(f, 1000) < 0)
			return -1;
	}
	double dt = now() - t0;
	printf("sourcesink: %.0f MiB bulk IN in %.3f s = %.0f MB/s (%d in flight, %d KiB URBs)\n",
	       (double)s.done / 1048576.0, dt, (double)s.done / dt / 1e6, INFLIGHT, CHUNK / 1024);
	return s.errors || s.done < bytes ? -1 : 0;
}

int main(int argc, char **argv)
{
	const char *sock = getenv("PVUSB_SOCKET") ? getenv("PVUSB_SOCKET") : PVUSB_DEFAULT_SOCKET;
	const char *fe = argc > 1 ? argv[1] : "demo";
	uint64_t mib = argc > 2 ? strtoull(argv[2], NULL, 10) : 256;
	struct pvusb_front *f;
	char err[256];
	if (pvusb_front_connect(sock, fe, 0, NULL, &f, err, sizeof(err)) < 0) {
		fprintf(stderr, "pvusb-demo: %s\n", err);
		return 1;
	}
	while (pvusb_front_wait(f, 200) > 0)
		;
	printf("Guest view of %s controller 0 (USB %s, %u ports):\n", fe,
	       pvusb_front_usb_ver(f) == 1 ? "1.1" : "2.0", pvusb_front_num_ports(f));
	struct pvusb_front_dev devs[32], *storage = NULL, *ss = NULL;
	int rc = 0;
	for (unsigned p = 1; p <= pvusb_front_num_ports(f); p++) {
		if (!pvusb_front_port_speed(f, p))
			continue;
		struct pvusb_front_dev *d = &devs[p];
		if (pvusb_front_enumerate(f, p, (uint8_t)p, d) < 0) {
			printf("  Port %u: enumeration failed\n", p);
			rc = 1;
			continue;
		}
		uint16_t vid = (uint16_t)(d->dev_desc[8] | d->dev_desc[9] << 8);
		uint16_t pid = (uint16_t)(d->dev_desc[10] | d->dev_desc[11] << 8);
		printf("  Port %u: Dev %03u ID %04x:%04x %s %s\n", p, d->addr, vid, pid, d->manufacturer,
		       d->product);
		if (pid == 0x7503 && !storage)
			storage = d;
		if (pid == 0x7500 && !ss)
			ss = d;
	}
	if (!storage || read_block(f, storage) < 0)
		rc = 1;
	if (!ss || stream(f, ss, mib << 20) < 0)
		rc = 1;
	pvusb_front_close(f);
	return rc;
}
