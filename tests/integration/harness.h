/* SPDX-License-Identifier: MIT */
/* Test harness: a real pvusbd process on a private socket, JSON commands to
 * it, and pass/fail counting that ends in "N passed, N failed". */
#ifndef PVUSB_TEST_HARNESS_H
#define PVUSB_TEST_HARNESS_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "pvusb/front.h"

struct daemon {
	pid_t pid;
	char dir[64];
	char sock[100];
};

extern int t_passed, t_failed;

#define CHECK(cond, ...)                                                                   \
	do {                                                                               \
		if (cond) {                                                                \
			t_passed++;                                                        \
		} else {                                                                   \
			t_failed++;                                                        \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);   \
			fprintf(stderr, __VA_ARGS__);                                      \
			fputc('\n', stderr);                                               \
		}                                                                          \
	} while (0)

#define CHECK_EQ(a, b, what)                                                               \
	do {                                                                               \
		long long _a = (long long)(a), _b = (long long)(b);                        \
		CHECK(_a == _b, "%s: got %lld, expected %lld", what, _a, _b);             \
	} while (0)

/* Start pvusbd (path in $PVUSBD) on a fresh socket; 0 or -1. */
int daemon_start(struct daemon *d);
void daemon_stop(struct daemon *d);
/* Send a JSON command; returns the parsed reply (caller puts it). */
json_object *daemon_cmd(struct daemon *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Send a command and report whether "ok" was true. */
bool daemon_ok(struct daemon *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A controller's entry from "list", or NULL. Caller puts the returned list. */
json_object *daemon_hc(struct daemon *d, const char *frontend, int devid, json_object **list);

/* Connect a frontend; NULL on error (reported). */
struct pvusb_front *front_connect(struct daemon *d, const char *name, unsigned devid);
/* Wait until `port` shows `speed` on the conn ring (up to 2 s). */
bool wait_port_speed(struct pvusb_front *f, unsigned port, uint8_t speed);

int t_summary(const char *name);

#endif
