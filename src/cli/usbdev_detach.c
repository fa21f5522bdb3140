/* SPDX-License-Identifier: MIT */
/* usbdev-detach <dom> <controller> <port> (xl); key=value forms accepted */
#include "cli.h"

int cli_detach(struct cli *c, const char *dom, long ctrl, long port)
{
	json_object *req = cli_req("detach", dom);
	json_object_object_add(req, "controller", json_object_new_int((int)ctrl));
	json_object_object_add(req, "port", json_object_new_int((int)port));
	return cli_call(c, req);
}

static int run(struct cli *c, int argc, char **argv)
{
	if (argc != 3)
		return cli_usage_error("usbdev-detach needs a domain, a controller and a port");
	const char *cs = cli_kv(2, argv + 1, "controller"), *ps = cli_kv(2, argv + 1, "port");
	long ctrl = cli_number_arg(cs ? cs : argv[1], 0, 65535, "controller");
	if (ctrl < 0)
		return EXIT_USAGE;
	long port = cli_number_arg(ps ? ps : argv[2], 1, 31, "port");
	return port < 0 ? EXIT_USAGE : cli_detach(c, argv[0], ctrl, port);
}

const struct cli_cmd cli_usbdev_detach = {
	"usbdev-detach", NULL, "<dom> <controller> <port>",
	"take the device off a port; it goes back to the host",
	"Requests in flight on the device are answered, the guest sees the port empty,\n"
	"and a host device is given back to its kernel drivers. 'controller=0 port=2'\n"
	"works as well as '0 2'.\n",
	run};
