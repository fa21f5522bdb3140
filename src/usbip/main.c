/* SPDX-License-Identifier: MIT */
/* pvusb-usbipd: export the devices of one pvusbd controller over USB/IP. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pvusb/local.h"
#include "server.h"
#include "util/log.h"

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: pvusb-usbipd [OPTION]...\n"
		"Export the USB devices on one pvusbd controller over USB/IP, to Linux's\n"
		"`usbip list -r HOST` and `usbip attach -r HOST -b BUSID` (vhci-hcd).\n"
		"\n"
		"pvusb-usbipd is that controller's frontend: create it and attach devices with\n"
		"the pvusb CLI, e.g.\n"
		"  pvusb usbctrl-attach usbip type=pv version=2 ports=8\n"
		"  pvusb usbdev-attach usbip 2-4.3        (or sourcesink, storage:disk.img, ...)\n"
		"  pvusb-usbipd --frontend usbip\n"
		"Port N is exported as busid pvusb-N. Devices attached or detached later appear\n"
		"and disappear by themselves; a client whose device goes away is disconnected.\n"
		"\n"
		"Options:\n"
		"  -s, --socket PATH     pvusbd's control socket (default $PVUSB_SOCKET or %s)\n"
		"  -n, --frontend NAME   the controller's frontend name (default usbip)\n"
		"  -c, --controller N    the controller's devid (default 0)\n"
		"  -l, --listen ADDR     address to listen on (default: every address;\n"
		"                        USB/IP has no authentication: prefer a trusted network)\n"
		"  -p, --port PORT       TCP port (default 3240)\n"
		"  -w, --pcap FILE       write every URB to FILE as usbmon records (pcap,\n"
		"                        LINKTYPE_USB_LINUX_MMAPPED), for Wireshark or tshark\n"
		"  -q, --quiet           log warnings and errors only\n"
		"  -h, --help            this text\n"
		"\n"
		"Exit status: 0 after SIGINT or SIGTERM, 1 when the controller cannot be\n"
		"reached or pvusbd closes it, 2 on a usage error.\n",
		PVUSB_DEFAULT_SOCKET);
}

int main(int argc, char **argv)
{
	struct usbip_server_opts o = {
		.sock_path = getenv("PVUSB_SOCKET") ? getenv("PVUSB_SOCKET") : PVUSB_DEFAULT_SOCKET,
		.frontend = "usbip",
		.port = "3240",
	};
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},   {"frontend", required_argument, NULL, 'n'},
		{"controller", required_argument, NULL, 'c'}, {"listen", required_argument, NULL, 'l'},
		{"port", required_argument, NULL, 'p'},     {"quiet", no_argument, NULL, 'q'},
		{"pcap", required_argument, NULL, 'w'},
		{"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "s:n:c:l:p:w:qh", opts, NULL)) != -1) {
		char *end;
		switch (ch) {
		case 's':
			o.sock_path = optarg;
			break;
		case 'n':
			o.frontend = optarg;
			break;
		case 'c': {
			unsigned long v = strtoul(optarg, &end, 10);
			if (!*optarg || *end || v > 254 || (optarg[0] == '0' && optarg[1])) {
				fprintf(stderr, "pvusb-usbipd: bad controller '%s' (a decimal devid 0-254)\n", optarg);
				return 2;
			}
			o.devid = (unsigned)v;
			break;
		}
		case 'l':
			o.listen = optarg;
			break;
		case 'p':
			o.port = optarg;
			break;
		case 'w':
			o.pcap_path = optarg;
			break;
		case 'q':
			pvusb_log_threshold = PVUSB_LOG_WARN;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "pvusb-usbipd: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	return usbip_server_run(&o) == 0 ? 0 : 1;
}
