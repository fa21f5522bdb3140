/* SPDX-License-Identifier: MIT */
/* Talking to pvusbd, and the argument helpers every subcommand uses. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
	static char buf[1 << 20];
	ssize_t n = send(fd, txt, strlen(txt), 0) < 0 ? -1 : recv(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	if (n <= 0) {
		fprintf(stderr, "pvusb: pvusbd closed the connection without answering%s\n",
			n < 0 && errno == EACCES ? " (permission denied)" : "; are you root or in pvusbd's group?");
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

const char *cli_str(json_object *o, const char *k)
{
	json_object *v;
	return k && json_object_object_get_ex(o, k, &v) && v ? json_object_get_string(v) : "";
}

int cli_int(json_object *o, const char *k)
{
	json_object *v;
	return k && json_object_object_get_ex(o, k, &v) ? json_object_get_int(v) : 0;
}

int cli_call_print(struct cli *c, json_object *req, const char *fmt, const char *f1, const char *f2)
{
	int rc;
	json_object *reply = cli_request(c, req, &rc);
	json_object_put(req);
	if (!reply)
		return rc;
	if (c->json) {
		json_object *o = json_object_new_object();
		if (f1)
			json_object_object_add(o, f1, json_object_new_int(cli_int(reply, f1)));
		if (f2)
			json_object_object_add(o, f2, json_object_new_int(cli_int(reply, f2)));
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
	} else if (fmt) {
		printf(fmt, cli_int(reply, f1), cli_int(reply, f2));
	}
	json_object_put(reply);
	return EXIT_OK;
}

const char *cli_kv(int argc, char **argv, const char *key)
{
	size_t n = strlen(key);
	for (int i = 0; i < argc; i++)
		if (!strncmp(argv[i], key, n) && argv[i][n] == '=')
			return argv[i] + n + 1;
	return NULL;
}

const char *cli_unknown_kv(int argc, char **argv, const char *const *keys)
{
	for (int i = 0; i < argc; i++) {
		bool known = false;
		for (const char *const *k = keys; *k && !known; k++)
			known = !strncmp(argv[i], *k, strlen(*k)) && argv[i][strlen(*k)] == '=';
		if (!known)
			return argv[i];
	}
	return NULL;
}

long cli_number(const char *s, long lo, long hi)
{
	if (!s || !*s || (s[0] == '0' && s[1]))
		return -1; /* no leading zeros: never octal */
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	return (*end || errno || v < lo || v > hi || s[0] == '-' || s[0] == '+' || s[0] == ' ') ? -1 : v;
}

long cli_number_arg(const char *s, long lo, long hi, const char *what)
{
	long v = cli_number(s, lo, hi);
	if (v >= 0)
		return v;
	if (s && s[0] == '0' && s[1] >= '0' && s[1] <= '9')
		fprintf(stderr, "pvusb: %s '%s' has a leading zero: numbers are decimal, not octal\n",
			what, s);
	else
		fprintf(stderr, "pvusb: %s must be a decimal number %ld..%ld, got '%s'\n", what, lo, hi,
			s ? s : "");
	return -1;
}

int cli_usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("pvusb: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return EXIT_USAGE;
}
