/* SPDX-License-Identifier: MIT */
/* usb-attach <dom> <devid> <port> <device> (xm) */
#include "cli.h"

static int run(struct cli *c, int argc, char **argv)
{
	if (argc != 4)
		return cli_usage_error("usb-attach needs a domain, a controller devid, a port and a device");
	long devid = cli_number_arg(argv[1], 0, 65535, "devid");
	if (devid < 0)
		return EXIT_USAGE;
	long port = cli_number_arg(argv[2], 1, 16, "port (xm allows 1..16)");
	return port < 0 ? EXIT_USAGE : cli_attach(c, argv[0], argv[3], devid, port);
}

const struct cli_cmd cli_usb_attach = {
	"usb-attach", "usbdev-attach", "<dom> <devid> <port> <device>",
	"attach a device to a given port (xm name)", "", run};
