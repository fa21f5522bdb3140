/* SPDX-License-Identifier: MIT */
/*
 * The ring journal as the core keeps it (src/core/urb.c's hooks), under real
 * traffic: one process, a controller with an emulated keyboard and
 * sourcesink, the frontend library on the local transport (this test plays
 * pvusbd's frontend-connect and attaches a journal, as the xen side does).
 * At quiet moments the test does what a pvusbd restarted after kill -9
 * would: it takes a copy of the record and of the urb ring page over, and
 * checks that exactly the requests in flight at that moment (none, or the
 * keyboard's interrupt IN) are answered, once, with -ESHUTDOWN, and that the
 * record was never marked broken (the core's indexes always matched it).
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/journal.h"
#include "pvusb/core.h"
#include "pvusb/front.h"
#include "pvusb/local.h"
#include "pvusb/ring.h"
#include "util/log.h"

#include "check.h"

#define PAGE 4096

static char dir[64], sock_path[100], rec_path[128], copy_path[128];
static const struct pvusb_journal_ident ID = {.domid = 3, .devid = 0, .urb_ref = 0, .conn_ref = 1, .evtchn = 0};

struct server {
	int lfd, cfd;
	struct pvusb_hc *hc;
	struct pvusb_ring_journal *j;
	int rc;
};

/* pvusbd's frontend-connect (src/daemon/commands.c), plus the journal the
 * xen side attaches before it connects. */
static void *serve(void *arg)
{
	struct server *s = arg;
	char buf[1024], cbuf[CMSG_SPACE(3 * sizeof(int))], err[200];
	s->rc = -EIO;
	s->cfd = accept(s->lfd, NULL, NULL);
	if (s->cfd < 0)
		return NULL;
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf) - 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	ssize_t n = recvmsg(s->cfd, &mh, MSG_CMSG_CLOEXEC);
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	if (n <= 0 || !cm || cm->cmsg_len != CMSG_LEN(3 * sizeof(int)))
		return NULL;
	buf[n] = 0;
	int fds[3];
	memcpy(fds, CMSG_DATA(cm), sizeof(fds));
	json_object *o = json_tokener_parse(buf), *v;
	int pages = o && json_object_object_get_ex(o, "pages", &v) ? json_object_get_int(v) : 0;
	int urb = o && json_object_object_get_ex(o, "urb-ring-ref", &v) ? json_object_get_int(v) : -1;
	int conn = o && json_object_object_get_ex(o, "conn-ring-ref", &v) ? json_object_get_int(v) : -1;
	json_object_put(o);
	struct pvusb_xport *xp;
	if (pvusb_local_xport_create(fds[0], fds[1], fds[2], (uint32_t)pages, (uint32_t)urb, (uint32_t)conn,
				     "local:journal", &xp, err, sizeof(err)) < 0 ||
	    pvusb_journal_create(rec_path, &ID, xp->urb_ring, &s->j, err, sizeof(err)) < 0 ||
	    pvusb_hc_set_journal(s->hc, s->j) < 0 || pvusb_hc_connect(s->hc, xp) < 0) {
		fprintf(stderr, "serve: %s\n", err);
		return NULL;
	}
	const char *ok = "{\"ok\":true,\"usb-ver\":2,\"num-ports\":2}";
	s->rc = send(s->cfd, ok, strlen(ok), MSG_NOSIGNAL) < 0 ? -errno : 0;
	return NULL;
}

/* A kill -9 now: a restarted pvusbd takes a copy of the record and of the
 * urb ring page over. Returns how many it answered (-1: refused), their ids
 * in ids[]. */
static int takeover_now(struct pvusb_front *f, uint16_t *ids, unsigned max)
{
	static uint8_t ring[PAGE] __attribute__((aligned(64))), rec[PAGE];
	char err[200];
	memcpy(ring, pvusb_front_urb_sring(f), PAGE);
	int in = open(rec_path, O_RDONLY), out = open(copy_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	bool ok = in >= 0 && out >= 0 && read(in, rec, PAGE) == PAGE && write(out, rec, PAGE) == PAGE;
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	struct pvusb_ring_journal *j;
	if (!ok || pvusb_journal_open(copy_path, &ID, &j, err, sizeof(err)) < 0) {
		fprintf(stderr, "takeover_now: cannot copy the record: %s\n", err);
		return -1;
	}
	struct usbif_ring r;
	usbif_urb_back_attach(&r, ring);
	uint32_t before = usbif_idx_load(&r.sring->rsp_prod);
	struct pvusb_journal_result res;
	int rc = pvusb_journal_takeover(j, ring, &res, err, sizeof(err));
	pvusb_journal_close(j, true);
	if (rc < 0) {
		fprintf(stderr, "takeover_now: refused: %s\n", err);
		return -1;
	}
	for (unsigned i = 0; i < res.answered && i < max; i++) {
		const struct usbif_urb_response *rsp = usbif_ring_slot(&r, before + i);
		ids[i] = rsp->status == USBIF_STATUS_SHUTDOWN ? rsp->id : 0xffff;
	}
	return res.published == res.answered ? (int)res.answered : -1;
}

static unsigned inflight(struct pvusb_hc *hc)
{
	struct pvusb_hc_stats st;
	pvusb_hc_stats(hc, &st);
	return st.inflight;
}

static int int_done;
static void int_complete(struct pvusb_urb *u) { int_done++; }

int main(void)
{
	pvusb_log_threshold = PVUSB_LOG_ERR; /* mismatches between core and record are errors */
	snprintf(dir, sizeof(dir), "%s/pvusb-jcore.XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!mkdtemp(dir))
		return 1;
	snprintf(sock_path, sizeof(sock_path), "%s/sock", dir);
	snprintf(rec_path, sizeof(rec_path), "%s/rings/3-0", dir);
	snprintf(copy_path, sizeof(copy_path), "%s/copy", dir);

	struct server s = {.cfd = -1};
	struct pvusb_hc_config cfg = {.usb_ver = 2, .num_ports = 2, .frontend = "journal", .spin_us = 0};
	struct pvusb_dev *kbd, *ss;
	char err[200];
	if (pvusb_hc_create(&cfg, &s.hc) < 0 || pvusb_dev_open("keyboard", &kbd, err, sizeof(err)) < 0 ||
	    pvusb_hc_attach(s.hc, 1, kbd) < 0 || pvusb_dev_open("sourcesink", &ss, err, sizeof(err)) < 0 ||
	    pvusb_hc_attach(s.hc, 2, ss) < 0) {
		fprintf(stderr, "setup failed\n");
		return 1;
	}
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	s.lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s.lfd < 0 || bind(s.lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s.lfd, 1) < 0)
		return 1;
	pthread_t t;
	pthread_create(&t, NULL, serve, &s);
	struct pvusb_front *f;
	struct pvusb_front_opts opts = {.pool_pages = 64, .spin_us = 0};
	int rc = pvusb_front_connect(sock_path, "journal", 0, &opts, &f, err, sizeof(err));
	pthread_join(t, NULL);
	CHECK(rc == 0 && s.rc == 0, "connected with a journal");
	if (rc < 0 || s.rc < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}

	uint16_t ids[16];
	struct pvusb_front_dev d1, d2;
	for (int i = 0; i < 200 && (!pvusb_front_port_speed(f, 1) || !pvusb_front_port_speed(f, 2)); i++)
		pvusb_front_wait(f, 10);
	CHECK(pvusb_front_enumerate(f, 1, 3, &d1) == 0, "keyboard enumerated");
	CHECK(pvusb_front_enumerate(f, 2, 4, &d2) == 0, "sourcesink enumerated");
	CHECK(takeover_now(f, ids, 16) == 0, "idle after enumeration: a takeover answers nothing");

	/* the keyboard's interrupt IN stays in flight, as usbhid's does */
	uint8_t *kbuf = pvusb_front_alloc(f, 8);
	struct pvusb_urb iu = {.port = 1, .devaddr = 3, .endpoint = 1, .type = USBIF_PIPE_TYPE_INT,
			       .in = true, .length = 8, .buffer = kbuf, .interval = 8,
			       .complete = int_complete};
	CHECK(pvusb_front_submit(f, &iu) == 0, "interrupt IN submitted");
	for (int i = 0; i < 200 && inflight(s.hc) == 0; i++)
		usleep(1000);
	CHECK(inflight(s.hc) == 1, "the interrupt IN is in flight in the core");
	rc = takeover_now(f, ids, 16);
	CHECK(rc == 1 && ids[0] == iu.id, "a takeover answers the interrupt IN in flight, -ESHUTDOWN");

	/* traffic around it: bulk both ways, control, requests refused at once,
	 * an unlink of nothing; the record follows every one */
	uint8_t *buf = pvusb_front_alloc(f, 16384);
	unsigned bad = 0, checks = 0;
	for (int round = 0; round < 200; round++) {
		bad += pvusb_front_transfer(f, 2, 4, USBIF_PIPE_TYPE_BULK, 0x81, buf, 16384, 2000) != 16384;
		memset(buf, 0, 512);
		for (int k = 0; k < 512; k++)
			buf[k] = (uint8_t)((k % 512) % 63);
		bad += pvusb_front_transfer(f, 2, 4, USBIF_PIPE_TYPE_BULK, 0x02, buf, 512, 2000) != 512;
		bad += pvusb_front_control(f, 2, 4, 0x80, 6, 0x0100, 0, buf, 18, 2000) != 18;
		bad += pvusb_front_control(f, 2, 9, 0x80, 6, 0x0100, 0, buf, 18, 2000) != USBIF_STATUS_NODEV;
		if (round % 20 == 0) {
			rc = takeover_now(f, ids, 16);
			checks++;
			bad += !(rc == 1 && ids[0] == iu.id);
		}
	}
	CHECK(bad == 0, "traffic moved, and every takeover answered exactly the interrupt IN");
	CHECK(checks == 10, "ten takeovers under traffic");

	/* cancelled: both the unlink and its target answered; nothing in flight */
	CHECK(pvusb_front_unlink(f, &iu) == 0, "interrupt IN unlinked");
	for (int i = 0; i < 200 && !int_done; i++)
		pvusb_front_wait(f, 10);
	CHECK(int_done == 1, "the unlinked interrupt IN completed once");
	for (int i = 0; i < 200 && inflight(s.hc) != 0; i++)
		usleep(1000);
	CHECK(takeover_now(f, ids, 16) == 0, "after the unlink a takeover answers nothing");

	pvusb_front_close(f);
	pvusb_hc_disconnect(s.hc);
	pvusb_journal_close(s.j, true);
	CHECK(access(rec_path, F_OK) < 0, "the record is gone with the connection");
	pvusb_hc_destroy(s.hc);
	close(s.cfd);
	close(s.lfd);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	printf("journal_core: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
