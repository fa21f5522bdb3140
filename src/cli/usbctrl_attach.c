/* SPDX-License-Identifier: MIT */
/* usbctrl-attach <dom> [type=pv] [version=1|2] [ports=N] [devid=N] (xl) */
#include <string.h>

#include "cli.h"

int cli_hc_create(struct cli *c, const char *dom, long ver, long ports)
{
	json_object *req = cli_req("hc-create", dom);
	json_object_object_add(req, "usb-ver", json_object_new_int((int)ver));
	json_object_object_add(req, "ports", json_object_new_int((int)ports));
	return cli_call_print(c, req, "controller %d\n", "controller", NULL);
}

static int run(struct cli *c, int argc, char **argv)
{
	static const char *const keys[] = {"type", "version", "ports", NULL};
	if (argc < 1)
		return cli_usage_error("usbctrl-attach needs a domain");
	const char *bad = cli_unknown_kv(argc - 1, argv + 1, keys);
	if (bad)
		return cli_usage_error("unexpected '%s': usbctrl-attach takes type=, version=, ports=", bad);
	const char *type = cli_kv(argc - 1, argv + 1, "type");
	const char *vs = cli_kv(argc - 1, argv + 1, "version");
	const char *ps = cli_kv(argc - 1, argv + 1, "ports");
	if (type && strcmp(type, "pv") && strcmp(type, "auto"))
		return cli_usage_error("type must be pv or auto, got '%s' (qusb and devicemodel "
				       "controllers are served by QEMU, not pvusbd)", type);
	long ver = vs ? cli_number_arg(vs, 1, 2, "version") : 2;
	long ports = ps ? cli_number_arg(ps, 1, 31, "ports") : 8;
	if (ver < 0 || ports < 0)
		return EXIT_USAGE;
	return cli_hc_create(c, argv[0], ver, ports);
}

const struct cli_cmd cli_usbctrl_attach = {
	"usbctrl-attach", NULL, "<dom> [type=pv] [version=1|2] [ports=1..31]",
	"create a virtual USB controller for a domain",
	"Creates a controller with the next free devid and prints it. version=1 is USB 1.1,\n"
	"version=2 (default) USB 2.0; ports defaults to 8. On Xen, 'xl usbctrl-attach\n"
	"<dom> type=pv' works as well: pvusbd answers libxl's request.\n",
	run};
