/* SPDX-License-Identifier: MIT */
/*
 * pvusbd: the PVUSB backend daemon. One epoll loop carries the control
 * socket, every client connection and the signals; each controller's rings
 * are served by that controller's own thread (src/core).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon.h"
#include "pvusb/local.h"
#include "util/log.h"

static void usage(FILE *to)
{
	fprintf(to,
		"Usage: pvusbd [OPTIONS]\n"
		"The PVUSB backend daemon: serves virtual USB host controllers to frontends.\n\n"
		"  -f, --foreground      stay in the foreground (the default; kept for systemd units)\n"
		"  -s, --socket PATH     control socket (default %s)\n"
		"  -v, --verbose         log debug messages (when built with -Ddebug_log=true)\n"
		"  -q, --quiet           log only warnings and errors\n"
		"  -h, --help            show this help\n\n"
		"Controllers and devices are managed with pvusb(1) through the control socket.\n"
		"Exit status: 0 after a clean shutdown (SIGTERM, SIGINT or a shutdown command),\n"
		"1 when the socket cannot be set up.\n",
		PVUSB_DEFAULT_SOCKET);
}

/* Only root, or the user the daemon runs as, may drive it. */
static bool peer_allowed(int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return false;
	return cr.uid == 0 || cr.uid == getuid();
}

static int open_listener(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_err("socket path too long: %s", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	char dir[sizeof(sa.sun_path)];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		mkdir(dir, 0755); /* /run/pvusb on a fresh boot */
	}
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	unlink(path); /* a stale socket from a previous run */
	mode_t old = umask(0077);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || listen(fd, 64) < 0) {
		log_err("cannot listen on %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void watch(struct pvusbd *d, int fd)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = fd};
	epoll_ctl(d->epoll_fd, EPOLL_CTL_ADD, fd, &ev);
}

static void accept_clients(struct pvusbd *d)
{
	int fd;
	while ((fd = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
		if (!peer_allowed(fd)) {
			log_warn("refused a control connection from an unprivileged user");
			close(fd);
			continue;
		}
		watch(d, fd);
	}
}

/* Receive one message and the fds that came with it. */
static ssize_t recv_message(int fd, char *buf, size_t len, struct pvusbd_req *r)
{
	union {
		char buf[CMSG_SPACE(3 * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = {.iov_base = buf, .iov_len = len - 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf,
			    .msg_controllen = sizeof(cbuf.buf)};
	ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	r->nfds = 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); n >= 0 && cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		int nfds = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		int *fds = (int *)CMSG_DATA(cm);
		for (int i = 0; i < nfds; i++) {
			if (r->nfds < 3)
				r->fds[r->nfds++] = fds[i];
			else
				close(fds[i]); /* more fds than any command takes */
		}
	}
	if (n >= 0 && (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
		n = -2; /* oversized: refuse rather than parse half a message */
	if (n >= 0)
		buf[n] = 0;
	return n;
}

static bool is_frontend(struct pvusbd *d, int fd)
{
	for (int i = 0; i < PVUSBD_MAX_HCS; i++)
		if (d->hcs[i].hc && d->hcs[i].fe_fd == fd)
			return true;
	return false;
}

static void drop_client(struct pvusbd *d, int fd)
{
	pvusbd_frontend_gone(d, fd);
	close(fd);
}

static void serve_client(struct pvusbd *d, int fd)
{
	char buf[8192];
	struct pvusbd_req r = {.client_fd = fd};
	ssize_t n = recv_message(fd, buf, sizeof(buf), &r);
	if (n == 0 || (n < 0 && errno != EAGAIN && n != -2)) {
		for (int i = 0; i < r.nfds; i++)
			close(r.fds[i]);
		drop_client(d, fd);
		return;
	}
	if (n < 0 && errno == EAGAIN)
		return;
	if (is_frontend(d, fd)) { /* a frontend link carries no further commands */
		for (int i = 0; i < r.nfds; i++)
			close(r.fds[i]);
		return;
	}
	r.msg = n > 0 ? json_tokener_parse(buf) : NULL;
	json_object *reply = pvusbd_dispatch(d, &r);
	const char *txt = json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN);
	if (send(fd, txt, strlen(txt), MSG_NOSIGNAL) < 0 && r.keep_open)
		pvusbd_frontend_gone(d, fd);
	json_object_put(reply);
	json_object_put(r.msg);
}

static int setup_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any thread starts: all inherit it */
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static void run(struct pvusbd *d)
{
	struct epoll_event evs[32];
	while (!d->stopping) {
		int n = epoll_wait(d->epoll_fd, evs, 32, -1);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == d->listen_fd)
				accept_clients(d);
			else if (fd == d->signal_fd)
				d->stopping = true;
			else if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				serve_client(d, fd);
		}
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"foreground", no_argument, NULL, 'f'}, {"socket", required_argument, NULL, 's'},
		{"verbose", no_argument, NULL, 'v'},    {"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0}};
	struct pvusbd *d = calloc(1, sizeof(*d));
	d->sock_path = getenv("PVUSB_SOCKET") ? getenv("PVUSB_SOCKET") : PVUSB_DEFAULT_SOCKET;
	for (int c; (c = getopt_long(argc, argv, "fs:vqh", opts, NULL)) != -1;) {
		switch (c) {
		case 'f': break;
		case 's': d->sock_path = optarg; break;
		case 'v': pvusb_log_threshold = PVUSB_LOG_DEBUG; break;
		case 'q': pvusb_log_threshold = PVUSB_LOG_WARN; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	d->signal_fd = setup_signals();
	d->listen_fd = open_listener(d->sock_path);
	d->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (d->listen_fd < 0 || d->signal_fd < 0 || d->epoll_fd < 0)
		return 1;
	watch(d, d->listen_fd);
	watch(d, d->signal_fd);
	log_info("pvusbd listening on %s", d->sock_path);
	run(d);
	log_info("pvusbd shutting down");
	pvusbd_destroy_all(d);
	unlink(d->sock_path);
	close(d->listen_fd);
	close(d->epoll_fd);
	close(d->signal_fd);
	free(d);
	return 0;
}
