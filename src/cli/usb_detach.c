/* SPDX-License-Identifier: MIT */
/* usb-detach <dom> <devid> <port> (xm) */
#include "cli.h"

static int run(struct cli *c, int argc, char **argv)
{
	if (argc != 3)
		return cli_usage_error("usb-detach needs a domain, a controller devid and a port");
	long devid = cli_number_arg(argv[1], 0, 65535, "devid");
	if (devid < 0)
		return EXIT_USAGE;
	long port = cli_number_arg(argv[2], 1, 16, "port (xm allows 1..16)");
	return port < 0 ? EXIT_USAGE : cli_detach(c, argv[0], devid, port);
}

const struct cli_cmd cli_usb_detach = {
	"usb-detach", "usbdev-detach", "<dom> <devid> <port>", "detach the device on a port (xm name)",
	"", run};
