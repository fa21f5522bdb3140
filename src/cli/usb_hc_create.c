/* SPDX-License-Identifier: MIT */
/* usb-hc-create <dom> <usb-ver> <ports> (xm) */
#include "cli.h"

static int run(struct cli *c, int argc, char **argv)
{
	if (argc != 3)
		return cli_usage_error("usb-hc-create needs a domain, a USB version and a port count");
	long ver = cli_number_arg(argv[1], 1, 2, "usb-ver");
	if (ver < 0)
		return EXIT_USAGE;
	long ports = cli_number_arg(argv[2], 1, 16, "ports (xm allows 1..16)");
	return ports < 0 ? EXIT_USAGE : cli_hc_create(c, argv[0], ver, ports);
}

const struct cli_cmd cli_usb_hc_create = {
	"usb-hc-create", "usbctrl-attach", "<dom> <usb-ver> <ports>",
	"create a controller (xm name; 1..16 ports as xm allowed)", "", run};
