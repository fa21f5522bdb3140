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
#include <sys/timerfd.h>
#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon.h"
#ifdef PVUSB_HAVE_LIBUSB
#include "dev/libusb_dev.h"
#endif
#include "pvusb/local.h"
#include "util/log.h"

static void usage(FILE *to)
{
	fprintf(to,
		"Usage: pvusbd [OPTIONS]\n"
		"The PVUSB backend daemon: serves virtual USB host controllers to frontends.\n\n"
		"  -f, --foreground      stay in the foreground (the default; kept for systemd units)\n"
		"  -s, --socket PATH     control socket (default %s)\n"
		"  -g, --group NAME      members of this group may use the socket too (default:\n"
		"                        only root and the user pvusbd runs as)\n"
		"  -S, --state FILE      state file, rewritten atomically on every change and\n"
		"                        restored at start (default %s)\n"
		"      --no-state        keep no state file\n"
		"  -c, --config-dir DIR  apply every DIR/*.cfg domain config at start\n"
		"                        (default %s, when it exists)\n"
		"  -l, --log-level LEVEL err, warn, info (default) or debug\n"
		"  -v, --verbose         same as --log-level debug (debug messages need a\n"
		"                        build with -Ddebug_log=true)\n"
		"  -q, --quiet           same as --log-level warn\n"
		"  -h, --help            show this help\n\n"
		"Controllers and devices are managed with pvusb(1) through the control socket.\n"
		"Logs go to stderr (the journal under systemd).\n"
		"Exit status: 0 after a clean shutdown (SIGTERM, SIGINT or a shutdown command),\n"
		"1 when the socket or the state directory cannot be set up, 2 on a bad option.\n",
		PVUSB_DEFAULT_SOCKET, PVUSBD_DEFAULT_STATE, PVUSBD_DEFAULT_CONFIG_DIR);
}

/* Whether the user uid belongs to group g (primary or supplementary). */
static bool user_in_group(uid_t uid, gid_t primary, gid_t g)
{
	if (primary == g)
		return true;
	struct passwd *pw = getpwuid(uid);
	gid_t groups[256];
	int n = 256;
	if (!pw || getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) < 0)
		return false;
	for (int i = 0; i < n; i++)
		if (groups[i] == g)
			return true;
	return false;
}

/* Only root, the user the daemon runs as, or the configured group may
 * drive it: checked on the peer's credentials, not the socket's mode. */
static bool peer_allowed(struct pvusbd *d, int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return false;
	return cr.uid == 0 || cr.uid == getuid() ||
	       (d->has_group && user_in_group(cr.uid, cr.gid, d->group));
}

static int open_listener(struct pvusbd *d, const char *path)
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
	if (rc == 0 && d->has_group && (chown(path, (uid_t)-1, d->group) < 0 || chmod(path, 0660) < 0))
		rc = -1;
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
		if (!peer_allowed(d, fd)) {
			log_warn("refused a control connection from a user not allowed to use it");
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
	static char buf[256 * 1024]; /* one loop thread; room for a config file's text */
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

/* Every 2 s: assigned devices that were absent may have come back. */
static void on_timer(struct pvusbd *d)
{
	uint64_t ticks;
	if (read(d->timer_fd, &ticks, sizeof(ticks)) == sizeof(ticks))
		pvusbd_retry_missing(d);
}

static int setup_timer(void)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	struct itimerspec its = {.it_interval = {2, 0}, .it_value = {2, 0}};
	if (fd >= 0)
		timerfd_settime(fd, 0, &its, NULL);
	return fd;
}

static int parse_log_level(const char *s)
{
	static const struct { const char *name; int level; } levels[] = {
		{"err", PVUSB_LOG_ERR}, {"error", PVUSB_LOG_ERR}, {"warn", PVUSB_LOG_WARN},
		{"warning", PVUSB_LOG_WARN}, {"info", PVUSB_LOG_INFO}, {"debug", PVUSB_LOG_DEBUG}};
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		if (!strcmp(s, levels[i].name))
			return levels[i].level;
	return -1;
}

/* The state file's directory exists on a fresh boot (/var/lib/pvusb). */
static int make_state_dir(const char *path)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = 0;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		log_err("cannot create %s for the state file: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
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
			else if (fd == d->timer_fd)
				on_timer(d);
			else if (fd == d->signal_fd)
				d->stopping = true;
			else if (pvusbd_xen_owns_fd(d, fd))
				pvusbd_xen_event(d);
			else if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				serve_client(d, fd);
		}
	}
}

static int parse_options(struct pvusbd *d, int argc, char **argv)
{
	enum { OPT_NO_STATE = 256 };
	static const struct option opts[] = {
		{"foreground", no_argument, NULL, 'f'}, {"socket", required_argument, NULL, 's'},
		{"group", required_argument, NULL, 'g'}, {"state", required_argument, NULL, 'S'},
		{"no-state", no_argument, NULL, OPT_NO_STATE},
		{"config-dir", required_argument, NULL, 'c'}, {"log-level", required_argument, NULL, 'l'},
		{"verbose", no_argument, NULL, 'v'},    {"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0}};
	for (int c; (c = getopt_long(argc, argv, "fs:g:S:c:l:vqh", opts, NULL)) != -1;) {
		struct group *gr;
		switch (c) {
		case 'f': break;
		case 's': d->sock_path = optarg; break;
		case 'S': d->state_path = optarg; break;
		case OPT_NO_STATE: d->state_path = NULL; break;
		case 'c': d->config_dir = optarg; break;
		case 'g':
			if (!(gr = getgrnam(optarg))) {
				fprintf(stderr, "pvusbd: no such group '%s'\n", optarg);
				return 2;
			}
			d->group = gr->gr_gid;
			d->has_group = true;
			break;
		case 'l':
			if ((pvusb_log_threshold = parse_log_level(optarg)) < 0) {
				fprintf(stderr, "pvusbd: --log-level takes err, warn, info or debug\n");
				return 2;
			}
			break;
		case 'v': pvusb_log_threshold = PVUSB_LOG_DEBUG; break;
		case 'q': pvusb_log_threshold = PVUSB_LOG_WARN; break;
		case 'h': usage(stdout); return 1;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pvusbd: unexpected argument '%s'; see pvusbd --help\n", argv[optind]);
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct pvusbd *d = calloc(1, sizeof(*d));
	d->sock_path = getenv("PVUSB_SOCKET") ? getenv("PVUSB_SOCKET") : PVUSB_DEFAULT_SOCKET;
	d->state_path = PVUSBD_DEFAULT_STATE;
	d->config_dir = PVUSBD_DEFAULT_CONFIG_DIR; /* applied only when it exists */
	int rc = parse_options(d, argc, argv);
	if (rc)
		return rc == 1 ? 0 : rc;
	if (d->state_path && make_state_dir(d->state_path) < 0)
		return 1;
	d->signal_fd = setup_signals();
	d->timer_fd = setup_timer();
	d->listen_fd = open_listener(d, d->sock_path);
	d->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (d->listen_fd < 0 || d->signal_fd < 0 || d->epoll_fd < 0 || d->timer_fd < 0)
		return 1;
	watch(d, d->listen_fd);
	watch(d, d->signal_fd);
	watch(d, d->timer_fd);
	pvusbd_state_load(d);
	pvusbd_config_dir_apply(d);
	int xen_fd = pvusbd_xen_init(d); /* after the state file: xenstore is the truth for xen */
	if (xen_fd >= 0)
		watch(d, xen_fd);
	pvusbd_state_give_back(d);
	log_info("pvusbd listening on %s", d->sock_path);
	run(d);
	log_info("pvusbd shutting down");
	pvusbd_xen_fini(d);
	pvusbd_destroy_all(d);
#ifdef PVUSB_HAVE_LIBUSB
	pvusb_libusb_shutdown(); /* anything still held goes back to its drivers */
#endif
	unlink(d->sock_path);
	close(d->listen_fd);
	close(d->epoll_fd);
	close(d->signal_fd);
	close(d->timer_fd);
	free(d);
	return 0;
}
