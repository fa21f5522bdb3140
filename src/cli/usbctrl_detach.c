/* SPDX-License-Identifier: MIT */
/* usbctrl-detach <dom> <devid> (xl) */
#include "cli.h"

int cli_hc_destroy(struct cli *c, const char *dom, long devid)
{
	json_object *req = cli_req("hc-destroy", dom);
	json_object_object_add(req, "controller", json_object_new_int((int)devid));
	return cli_call(c, req);
}

static int run(struct cli *c, int argc, char **argv)
{
	if (argc != 2)
		return cli_usage_error("usbctrl-detach needs a domain and a controller devid");
	const char *kv = cli_kv(1, argv + 1, "devid");
	long devid = cli_number_arg(kv ? kv : argv[1], 0, 65535, "devid");
	return devid < 0 ? EXIT_USAGE : cli_hc_destroy(c, argv[0], devid);
}

const struct cli_cmd cli_usbctrl_detach = {
	"usbctrl-detach", NULL, "<dom> <devid>",
	"destroy a controller; its devices go back to the host",
	"Every device on the controller is detached first (requests in flight are\n"
	"answered, the guest sees the ports empty), then the controller goes away.\n",
	run};
