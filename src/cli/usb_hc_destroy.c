/* SPDX-License-Identifier: MIT */
/* usb-hc-destroy <dom> <devid> (xm) */
#include "cli.h"

static int run(struct cli *c, int argc, char **argv)
{
	if (argc != 2)
		return cli_usage_error("usb-hc-destroy needs a domain and a controller devid");
	long devid = cli_number_arg(argv[1], 0, 65535, "devid");
	return devid < 0 ? EXIT_USAGE : cli_hc_destroy(c, argv[0], devid);
}

const struct cli_cmd cli_usb_hc_destroy = {
	"usb-hc-destroy", "usbctrl-detach", "<dom> <devid>", "destroy a controller (xm name)", "", run};
