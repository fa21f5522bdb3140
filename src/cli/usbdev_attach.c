/* SPDX-License-Identifier: MIT */
/* usbdev-attach <dom> <device> [controller=<id> [port=<n>]] (xl) */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cli_attach(struct cli *c, const char *dom, const char *device, long ctrl, long port)
{
	json_object *req = cli_req("attach", dom);
	json_object_object_add(req, "device", json_object_new_string(device));
	if (ctrl >= 0)
		json_object_object_add(req, "controller", json_object_new_int((int)ctrl));
	if (port > 0)
		json_object_object_add(req, "port", json_object_new_int((int)port));
	return cli_call_print(c, req, "attached to controller %d port %d\n", "controller", "port");
}

/* A device name, not a key=value option: no '=' at all, or a ':' before the
 * first one (sourcesink:speed=high, storage:/img,ro). */
static bool is_device_name(const char *arg)
{
	const char *eq = strchr(arg, '='), *colon = strchr(arg, ':');
	return !eq || (colon && colon < eq);
}

/* The device may also be given as xl's hostbus=B hostaddr=A. */
static const char *device_arg(int argc, char **argv, char *buf, size_t len)
{
	const char *bus = cli_kv(argc, argv, "hostbus"), *addr = cli_kv(argc, argv, "hostaddr");
	if (bus && addr) {
		snprintf(buf, len, "%s.%s", bus, addr);
		return buf;
	}
	for (int i = 0; i < argc; i++)
		if (is_device_name(argv[i]))
			return argv[i];
	return NULL;
}

static int run(struct cli *c, int argc, char **argv)
{
	static const char *const keys[] = {"controller", "port", "hostbus", "hostaddr", NULL};
	char buf[64];
	if (argc < 2)
		return cli_usage_error("usbdev-attach needs a domain and a device");
	const char *dev = device_arg(argc - 1, argv + 1, buf, sizeof(buf));
	if (!dev)
		return cli_usage_error("no device given: a bus path (1-2), bus.address (1.6), "
				       "vendor:product[:serial], or hostbus=B hostaddr=A");
	for (int i = 1; i < argc; i++)
		if (argv[i] != dev && cli_unknown_kv(1, argv + i, keys))
			return cli_usage_error("unexpected '%s': usbdev-attach takes controller= and port=",
					       argv[i]);
	const char *cs = cli_kv(argc - 1, argv + 1, "controller"), *ps = cli_kv(argc - 1, argv + 1, "port");
	if (ps && !cs)
		return cli_usage_error("port= needs controller= (as with xl)");
	long ctrl = cs ? cli_number_arg(cs, 0, 65535, "controller") : -1;
	long port = ps ? cli_number_arg(ps, 1, 31, "port") : 0;
	if ((cs && ctrl < 0) || (ps && port < 0))
		return EXIT_USAGE;
	return cli_attach(c, argv[0], dev, ctrl, port);
}

const struct cli_cmd cli_usbdev_attach = {
	"usbdev-attach", NULL, "<dom> <device> [controller=<devid> [port=<n>]]",
	"give a device to a domain",
	"Without controller=, the device goes to the first free port of the domain's\n"
	"controllers (lowest devid first); when none is free, a new USB 2.0 controller\n"
	"with 8 ports is created for it. With controller= but no port=, the first free\n"
	"port of that controller is used. Prints where the device went.\n",
	run};
