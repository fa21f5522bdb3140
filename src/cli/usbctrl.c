/* SPDX-License-Identifier: MIT */
/* usbctrl-attach / usb-hc-create and usbctrl-detach / usb-hc-destroy. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int create(struct cli *c, const char *dom, long ver, long ports)
{
	json_object *req = cli_req("hc-create", dom);
	json_object_object_add(req, "usb-ver", json_object_new_int((int)ver));
	json_object_object_add(req, "ports", json_object_new_int((int)ports));
	int rc;
	json_object *reply = cli_request(c, req, &rc), *v;
	json_object_put(req);
	if (!reply)
		return rc;
	if (json_object_object_get_ex(reply, "controller", &v))
		printf(c->json ? "{\"controller\":%d}\n" : "controller %d\n", json_object_get_int(v));
	json_object_put(reply);
	return EXIT_OK;
}

int cmd_usbctrl_attach(struct cli *c, int argc, char **argv)
{
	if (argc < 1)
		return EXIT_USAGE;
	const char *type = cli_kv(argc - 1, argv + 1, "type");
	const char *vs = cli_kv(argc - 1, argv + 1, "version");
	const char *ps = cli_kv(argc - 1, argv + 1, "ports");
	long ver = vs ? cli_number(vs, 1, 2) : 2, ports = ps ? cli_number(ps, 1, 31) : 8;
	if (type && strcmp(type, "pv") && strcmp(type, "auto")) {
		fprintf(stderr, "pvusb: type must be pv or auto (qusb and devicemodel are QEMU's)\n");
		return EXIT_USAGE;
	}
	if (ver < 0) {
		fprintf(stderr, "pvusb: version must be 1 or 2\n");
		return EXIT_USAGE;
	}
	if (ports < 0) {
		fprintf(stderr, "pvusb: ports must be 1..31 (decimal, no leading zero)\n");
		return EXIT_USAGE;
	}
	return create(c, argv[0], ver, ports);
}

int cmd_usbctrl_detach(struct cli *c, int argc, char **argv)
{
	long devid = argc == 2 ? cli_number(argv[1], 0, 1000000) : -1;
	if (devid < 0)
		return EXIT_USAGE;
	json_object *req = cli_req("hc-destroy", argv[0]);
	json_object_object_add(req, "controller", json_object_new_int((int)devid));
	return cli_call(c, req);
}
