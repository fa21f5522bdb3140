/* SPDX-License-Identifier: MIT */
/* pvusbd internals: the controller table and the control-socket commands. */
#ifndef PVUSBD_DAEMON_H
#define PVUSBD_DAEMON_H

#include <json-c/json.h>
#include <stdbool.h>

#include "pvusb/core.h"

#define PVUSBD_MAX_HCS 64

/* One controller the daemon serves. */
struct pvusbd_hc {
	struct pvusb_hc *hc;
	char frontend[64];
	unsigned devid;
	int fe_fd; /* the frontend's socket while one is connected, else -1 */
};

struct pvusbd {
	int listen_fd, epoll_fd, signal_fd;
	const char *sock_path;
	bool stopping;
	struct pvusbd_hc hcs[PVUSBD_MAX_HCS];
};

/* A request being answered: the parsed message and the fds it carried. */
struct pvusbd_req {
	int client_fd;
	json_object *msg;
	int fds[3];
	int nfds;
	bool keep_open; /* the connection became a frontend link */
};

/* Run one command; returns the reply object (never NULL). */
json_object *pvusbd_dispatch(struct pvusbd *d, struct pvusbd_req *r);

struct pvusbd_hc *pvusbd_find_hc(struct pvusbd *d, const char *frontend, unsigned devid);
/* The frontend on fd went away: disconnect its controller. */
void pvusbd_frontend_gone(struct pvusbd *d, int fd);
void pvusbd_destroy_all(struct pvusbd *d);

#endif
