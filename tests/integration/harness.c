/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "util/sock.h"

int t_passed, t_failed;

int daemon_start(struct daemon *d)
{
	const char *bin = getenv("PVUSBD");
	if (!bin) {
		fprintf(stderr, "PVUSBD is not set\n");
		return -1;
	}
	snprintf(d->dir, sizeof(d->dir), "/tmp/pvusb-test-XXXXXX");
	if (!mkdtemp(d->dir))
		return -1;
	snprintf(d->sock, sizeof(d->sock), "%s/pvusbd.sock", d->dir);
	char state[sizeof(d->dir) + 16];
	snprintf(state, sizeof(state), "%s/state.json", d->dir);
	d->pid = fork();
	if (d->pid == 0) {
		execl(bin, bin, "-f", "-q", "-s", d->sock, "--state", state, "--config-dir", d->dir,
		      (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) { /* up to 5 s for the socket */
		int fd = pvusb_unix_connect(d->sock);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		usleep(10000);
	}
	fprintf(stderr, "pvusbd did not come up\n");
	return -1;
}

void daemon_stop(struct daemon *d)
{
	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		int st;
		waitpid(d->pid, &st, 0);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "pvusbd exit status %d", st);
	}
	char state[sizeof(d->dir) + 16];
	snprintf(state, sizeof(state), "%s/state.json", d->dir);
	unlink(state);
	rmdir(d->dir);
}

static json_object *vcmd(struct daemon *d, const char *fmt, va_list ap)
{
	char msg[4096], buf[65536];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	int fd = pvusb_unix_connect(d->sock);
	if (fd < 0)
		return NULL;
	json_object *o = NULL;
	if (send(fd, msg, strlen(msg), 0) >= 0) {
		ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
		if (n > 0) {
			buf[n] = 0;
			o = json_tokener_parse(buf);
		}
	}
	close(fd);
	return o;
}

json_object *daemon_cmd(struct daemon *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	json_object *o = vcmd(d, fmt, ap);
	va_end(ap);
	return o;
}

bool daemon_ok(struct daemon *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	json_object *o = vcmd(d, fmt, ap), *v;
	va_end(ap);
	bool ok = o && json_object_object_get_ex(o, "ok", &v) && json_object_get_boolean(v);
	if (!ok)
		fprintf(stderr, "  command failed: %s\n", o ? json_object_to_json_string(o) : "(no reply)");
	json_object_put(o);
	return ok;
}

json_object *daemon_hc(struct daemon *d, const char *frontend, int devid, json_object **list)
{
	*list = daemon_cmd(d, "{\"cmd\":\"list\",\"frontend\":\"%s\"}", frontend);
	json_object *arr, *v;
	if (!*list || !json_object_object_get_ex(*list, "controllers", &arr))
		return NULL;
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *h = json_object_array_get_idx(arr, i);
		if (json_object_object_get_ex(h, "controller", &v) && json_object_get_int(v) == devid)
			return h;
	}
	return NULL;
}

struct pvusb_front *front_connect(struct daemon *d, const char *name, unsigned devid)
{
	struct pvusb_front *f;
	char err[256];
	if (pvusb_front_connect(d->sock, name, devid, NULL, &f, err, sizeof(err)) < 0) {
		fprintf(stderr, "  front_connect %s/%u: %s\n", name, devid, err);
		return NULL;
	}
	return f;
}

bool wait_port_speed(struct pvusb_front *f, unsigned port, uint8_t speed)
{
	for (int i = 0; i < 200; i++) {
		pvusb_front_poll(f);
		if (pvusb_front_port_speed(f, port) == speed)
			return true;
		pvusb_front_wait(f, 10);
	}
	return pvusb_front_port_speed(f, port) == speed;
}

int t_summary(const char *name)
{
	printf("%s: %d passed, %d failed\n", name, t_passed, t_failed);
	return t_failed ? 1 : 0;
}
