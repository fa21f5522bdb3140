/* SPDX-License-Identifier: MIT */
/* usbdev-attach / usb-attach and usbdev-detach / usb-detach. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int send_port_cmd(struct cli *c, const char *cmd, const char *dom, long ctrl, long port,
			 const char *dev)
{
	json_object *req = cli_req(cmd, dom);
	json_object_object_add(req, "controller", json_object_new_int((int)ctrl));
	json_object_object_add(req, "port", json_object_new_int((int)port));
	if (dev)
		json_object_object_add(req, "device", json_object_new_string(dev));
	return cli_call(c, req);
}

/* usbdev-attach <dom> <device> [controller=<id>] [port=<n>] */
int cmd_usbdev_attach(struct cli *c, int argc, char **argv)
{
	if (argc < 2)
		return EXIT_USAGE;
	const char *cs = cli_kv(argc - 2, argv + 2, "controller");
	const char *ps = cli_kv(argc - 2, argv + 2, "port");
	long ctrl = cs ? cli_number(cs, 0, 1000000) : 0, port = ps ? cli_number(ps, 1, 31) : 1;
	if (ctrl < 0 || port < 0) {
		fprintf(stderr, "pvusb: controller and port are decimal numbers (port 1..31)\n");
		return EXIT_USAGE;
	}
	return send_port_cmd(c, "attach", argv[0], ctrl, port, argv[1]);
}

/* usbdev-detach <dom> <controller> <port>, positional or key=value */
int cmd_usbdev_detach(struct cli *c, int argc, char **argv)
{
	if (argc != 3)
		return EXIT_USAGE;
	const char *cs = cli_kv(2, argv + 1, "controller"), *ps = cli_kv(2, argv + 1, "port");
	long ctrl = cli_number(cs ? cs : argv[1], 0, 1000000), port = cli_number(ps ? ps : argv[2], 1, 31);
	if (ctrl < 0 || port < 0) {
		fprintf(stderr, "pvusb: expected <controller> <port> as decimal numbers\n");
		return EXIT_USAGE;
	}
	return send_port_cmd(c, "detach", argv[0], ctrl, port, NULL);
}
