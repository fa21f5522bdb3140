/* SPDX-License-Identifier: MIT */
/* pvusb-lsusb: the guest's view of a controller, like lsusb. It connects
 * as the controller's frontend, enumerates every device the conn ring
 * announces, and prints what the descriptors say. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pvusb/front.h"
#include "pvusb/local.h"

static const char *speed_name(uint8_t s)
{
	static const char *const names[] = {"none", "1.5M", "12M", "480M"};
	return s < 4 ? names[s] : "?";
}

static void usage(FILE *to)
{
	fprintf(to, "Usage: pvusb-lsusb [-s SOCKET] [-c CONTROLLER] [-v] FRONTEND\n"
		    "Connect to controller CONTROLLER (default 0) of FRONTEND as its frontend,\n"
		    "enumerate the attached devices and list them. -v also prints the\n"
		    "configuration's interfaces and endpoints.\n"
		    "Exit status: 0 when every device enumerated, 1 otherwise, 2 on usage errors.\n");
}

static void print_config(const struct pvusb_front_dev *d)
{
	for (unsigned i = 0; i + 2 <= d->config_len && d->config[i] >= 2; i += d->config[i]) {
		const uint8_t *p = d->config + i;
		if (p[1] == 4)
			printf("    Interface %u alt %u: class %02x/%02x/%02x, %u endpoints\n", p[2], p[3],
			       p[5], p[6], p[7], p[4]);
		else if (p[1] == 5)
			printf("      Endpoint 0x%02x %s, max packet %u\n", p[2],
			       (const char *[]){"control", "isochronous", "bulk", "interrupt"}[p[3] & 3],
			       (p[4] | p[5] << 8) & 0x7ff);
	}
}

int main(int argc, char **argv)
{
	const char *sock = getenv("PVUSB_SOCKET") ? getenv("PVUSB_SOCKET") : PVUSB_DEFAULT_SOCKET;
	unsigned devid = 0;
	bool verbose = false;
	for (int c; (c = getopt(argc, argv, "s:c:vh")) != -1;) {
		switch (c) {
		case 's': sock = optarg; break;
		case 'c': devid = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'v': verbose = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	struct pvusb_front *f;
	char err[256];
	if (pvusb_front_connect(sock, argv[optind], devid, NULL, &f, err, sizeof(err)) < 0) {
		fprintf(stderr, "pvusb-lsusb: %s\n", err);
		return 1;
	}
	/* the backend announces occupied ports right after connecting (C.2) */
	while (pvusb_front_wait(f, 200) > 0)
		;
	int failed = 0;
	uint8_t next_addr = 1;
	for (unsigned port = 1; port <= pvusb_front_num_ports(f); port++) {
		if (!pvusb_front_port_speed(f, port))
			continue;
		struct pvusb_front_dev d;
		int rc = pvusb_front_enumerate(f, port, next_addr++, &d);
		if (rc < 0) {
			printf("Port %u: enumeration failed (status %d)\n", port, rc);
			failed = 1;
			continue;
		}
		printf("Port %u: Dev %03u, %s, ID %02x%02x:%02x%02x %s %s", port, d.addr,
		       speed_name(d.speed), d.dev_desc[9], d.dev_desc[8], d.dev_desc[11],
		       d.dev_desc[10], d.manufacturer, d.product);
		printf(d.serial[0] ? " (serial %s)\n" : "\n", d.serial);
		if (verbose)
			print_config(&d);
	}
	pvusb_front_close(f);
	return failed;
}
