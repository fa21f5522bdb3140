/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "util/sock.h"

json_object *cli_request(struct cli *c, json_object *req, int *rc)
{
	int fd = pvusb_unix_connect(c->sock);
	if (fd < 0) {
		fprintf(stderr, "pvusb: cannot reach pvusbd at %s: %s\n"
				"Is it running? Start it with 'pvusbd' (or 'systemctl start pvusbd').\n",
			c->sock, strerror(-fd));
		*rc = EXIT_NODAEMON;
		return NULL;
	}
	const char *txt = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	char buf[65536];
	ssize_t n = send(fd, txt, strlen(txt), 0) < 0 ? -1 : recv(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	if (n <= 0) {
		fprintf(stderr, "pvusb: pvusbd closed the connection without answering\n");
		*rc = EXIT_NODAEMON;
		return NULL;
	}
	buf[n] = 0;
	json_object *reply = json_tokener_parse(buf), *v;
	if (reply && json_object_object_get_ex(reply, "ok", &v) && json_object_get_boolean(v)) {
		*rc = EXIT_OK;
		return reply;
	}
	fprintf(stderr, "pvusb: %s\n", reply && json_object_object_get_ex(reply, "error", &v)
					       ? json_object_get_string(v) : "bad reply from pvusbd");
	json_object_put(reply);
	*rc = EXIT_FAIL;
	return NULL;
}

json_object *cli_req(const char *cmd, const char *dom)
{
	json_object *req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string(cmd));
	if (dom)
		json_object_object_add(req, "frontend", json_object_new_string(dom));
	return req;
}

int cli_call(struct cli *c, json_object *req)
{
	int rc;
	json_object_put(cli_request(c, req, &rc));
	json_object_put(req);
	return rc;
}

const char *cli_kv(int argc, char **argv, const char *key)
{
	size_t n = strlen(key);
	for (int i = 0; i < argc; i++)
		if (!strncmp(argv[i], key, n) && argv[i][n] == '=')
			return argv[i] + n + 1;
	return NULL;
}

long cli_number(const char *s, long lo, long hi)
{
	if (!s || !*s || (s[0] == '0' && s[1]))
		return -1; /* no leading zeros: never octal */
	char *end;
	long v = strtol(s, &end, 10);
	return (*end || v < lo || v > hi) ? -1 : v;
}
