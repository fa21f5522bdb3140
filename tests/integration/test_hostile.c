/* SPDX-License-Identifier: MIT */
/*
 * A hostile frontend against a real pvusbd: malformed requests of every
 * kind get their exact status; a duplicate in-flight id, an unknown unlink,
 * a spurious-event storm change nothing else; a producer index more than 16
 * ahead or a conn-ring flood shuts down that one controller while another in
 * the same daemon keeps working; bad handshakes are refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "util/sock.h"

static struct daemon D;

#define MAXR 64
static struct usbif_urb_response got[MAXR];
static int ngot;

static void on_raw(struct pvusb_front *f, const struct usbif_urb_response *rsp, void *arg)
{
	if (ngot < MAXR)
		got[ngot++] = *rsp;
}

/* Submit one raw request and wait for `expect` raw responses in total. */
static void raw(struct pvusb_front *f, const struct usbif_urb_request *q)
{
	CHECK_EQ(pvusb_front_raw_submit(f, q), 0, "raw submit");
}

static bool wait_raw(struct pvusb_front *f, int count)
{
	for (int i = 0; i < 200 && ngot < count; i++)
		pvusb_front_wait(f, 10);
	return ngot >= count;
}

/* The status answered to the request just sent with id `id`. */
static int32_t one(struct pvusb_front *f, struct usbif_urb_request q)
{
	ngot = 0;
	raw(f, &q);
	if (!wait_raw(f, 1))
		return 12345;
	CHECK_EQ(got[0].id, q.id, "response carries the request id");
	return got[0].status;
}

static struct usbif_urb_request get_desc0(uint16_t id, uint32_t gref, uint8_t port)
{
	struct usbif_urb_request q = {.id = id, .nr_buffer_segs = 1,
				      .pipe = 0x80000080u | port, .buffer_length = 18};
	uint8_t setup[8] = {0x80, 6, 0, 1, 0, 0, 18, 0};
	memcpy(q.u.ctrl, setup, 8);
	q.seg[0] = (struct usbif_request_segment){.gref = gref, .offset = 0, .length = 18};
	return q;
}

static void test_malformed(struct pvusb_front *f)
{
	uint8_t *buf = pvusb_front_alloc(f, 4096);
	uint32_t g = pvusb_front_gref(f, buf);
	struct usbif_urb_request q = get_desc0(20, g, 1);
	CHECK_EQ(one(f, q), 0, "a good GET_DESCRIPTOR at address 0");
	CHECK(buf[0] == 18 && buf[1] == 1, "it wrote the device descriptor");
	q.nr_buffer_segs = 17;
	CHECK_EQ(one(f, q), -108, "17 segments");
	q = get_desc0(21, g, 1);
	q.seg[0].offset = 4090;
	CHECK_EQ(one(f, q), -108, "segment crossing its page");
	q = get_desc0(22, g, 0);
	CHECK_EQ(one(f, q), -19, "port 0");
	q = get_desc0(23, g, 3);
	CHECK_EQ(one(f, q), -19, "port beyond num-ports");
	q = get_desc0(24, g, 1);
	q.pipe |= 1u << 25;
	CHECK_EQ(one(f, q), -22, "reserved pipe bits");
	q = get_desc0(25, g, 1);
	q.buffer_length = 64;
	CHECK_EQ(one(f, q), -108, "buffer_length disagreeing with the segments");
	q = get_desc0(26, 0x7fffffff, 1);
	CHECK_EQ(one(f, q), -108, "grant reference outside the frontend's memory");
	q = get_desc0(27, 0, 1); /* page 0 is the urb ring itself: legal memory, harmless */
	q.u.ctrl[0] = 0x00;
	CHECK_EQ(one(f, q), -22, "SETUP direction contradicting the pipe");
	q = get_desc0(28, g, 1);
	q.u.ctrl[1] = USB_REQ_SET_CONFIGURATION;
	q.u.ctrl[0] = 0x80;
	CHECK_EQ(one(f, q), -22, "address 0 takes only GET_DESCRIPTOR and SET_ADDRESS");
	q = get_desc0(29, g, 1);
	q.pipe |= 77u << 8;
	CHECK_EQ(one(f, q), -19, "an address nobody was given");
	q = (struct usbif_urb_request){.id = 30, .pipe = 0x80000081u | USBIF_PIPE_UNLINK | (99u << 8)};
	CHECK_EQ(one(f, q), -19, "unlink for an unknown device");
	q = (struct usbif_urb_request){.id = 31, .pipe = 0x80000081u | USBIF_PIPE_UNLINK};
	q.u.unlink.unlink_id = 9;
	CHECK_EQ(one(f, q), 0, "unlink of an id not in flight");
	q = get_desc0(32, g, 1);
	q.pipe = (q.pipe & ~(3u << 30)) | (0u << 30); /* isochronous with too few descriptor bytes */
	q.u.isoc.number_of_packets = 3;
	q.u.isoc.nr_frame_desc_segs = 1;
	q.nr_buffer_segs = 1;
	q.seg[1] = (struct usbif_request_segment){.gref = g, .offset = 0, .length = 16};
	CHECK_EQ(one(f, q), -108, "isochronous descriptors that do not fit");
}

static void test_duplicate_id(struct pvusb_front *f)
{
	struct pvusb_front_dev d;
	CHECK_EQ(pvusb_front_enumerate(f, 2, 5, &d), 0, "enumerate the tablet");
	uint8_t *buf = pvusb_front_alloc(f, 4096);
	struct usbif_urb_request q = {.id = 3, .nr_buffer_segs = 1, .buffer_length = 6,
				      .pipe = 0x40000082u | (5u << 8) | (1u << 15)};
	q.seg[0] = (struct usbif_request_segment){.gref = pvusb_front_gref(f, buf), .length = 6};
	ngot = 0;
	raw(f, &q);
	pvusb_front_wait(f, 30);
	CHECK_EQ(ngot, 0, "tablet interrupt IN stays pending");
	raw(f, &q);
	CHECK(wait_raw(f, 1) && got[0].id == 3 && got[0].status == -22, "duplicate in-flight id -> -EINVAL");
	struct usbif_urb_request u = {.id = 4, .pipe = q.pipe | USBIF_PIPE_UNLINK};
	u.u.unlink.unlink_id = 3;
	raw(f, &u);
	CHECK(wait_raw(f, 3), "unlink answered");
	int target = -1, unlink = -1;
	for (int i = 1; i < ngot; i++) {
		if (got[i].id == 3)
			target = got[i].status;
		if (got[i].id == 4)
			unlink = got[i].status;
	}
	CHECK(target == USBIF_STATUS_CONNRESET && unlink == 0, "target cancelled (%d), unlink ok (%d)", target, unlink);
	pvusb_front_wait(f, 30);
	CHECK_EQ(ngot, 3, "no response beyond one per request");
}

static void test_spurious_events(struct pvusb_front *f)
{
	json_object *list, *h = daemon_hc(&D, "bad", 0, &list), *v;
	long req = h && json_object_object_get_ex(h, "requests", &v) ? json_object_get_int64(v) : -1;
	long rsp = h && json_object_object_get_ex(h, "responses", &v) ? json_object_get_int64(v) : -2;
	json_object_put(list);
	CHECK_EQ(req, rsp, "every request answered so far");
	ngot = 0;
	for (int i = 0; i < 2000; i++)
		pvusb_front_kick(f);
	pvusb_front_wait(f, 50);
	h = daemon_hc(&D, "bad", 0, &list);
	long req2 = h && json_object_object_get_ex(h, "requests", &v) ? json_object_get_int64(v) : -1;
	CHECK(req2 == req && ngot == 0, "2000 spurious events produce nothing");
	CHECK(h && json_object_object_get_ex(h, "state", &v) && !strcmp(json_object_get_string(v), "connected"),
	      "still connected");
	json_object_put(list);
}

static const char *hc_state(const char *fe)
{
	static char state[32];
	json_object *list, *h = daemon_hc(&D, fe, 0, &list), *v;
	snprintf(state, sizeof(state), "%s",
		 h && json_object_object_get_ex(h, "state", &v) ? json_object_get_string(v) : "?");
	json_object_put(list);
	return state;
}

static void good_still_works(const char *why)
{
	struct pvusb_front *g = front_connect(&D, "good", 0);
	CHECK(g != NULL, "good frontend connects (%s)", why);
	if (!g)
		return;
	struct pvusb_front_dev d;
	CHECK(wait_port_speed(g, 1, USBIF_SPEED_HIGH), "good controller announces (%s)", why);
	CHECK_EQ(pvusb_front_enumerate(g, 1, 1, &d), 0, "good controller enumerates");
	uint8_t b[512];
	CHECK_EQ(pvusb_front_transfer(g, 1, 1, USBIF_PIPE_TYPE_BULK, 0x81, b, 512, 2000), 512,
		 "good controller moves data");
	pvusb_front_close(g);
	usleep(50000);
}

static void test_producer_ahead(struct pvusb_front *f)
{
	struct usbif_urb_sring *s = pvusb_front_urb_sring(f);
	__atomic_store_n(&s->hdr.req_prod, s->hdr.rsp_prod + 40, __ATOMIC_RELEASE);
	pvusb_front_kick(f);
	usleep(100000);
	CHECK(!strcmp(hc_state("bad"), "broken"), "urb producer 40 ahead: controller broken (%s)", hc_state("bad"));
	good_still_works("after urb ring abuse");
}

static void test_conn_flood(void)
{
	struct pvusb_front *f = front_connect(&D, "flood", 0);
	CHECK(f != NULL, "flood frontend connects");
	if (!f)
		return;
	wait_port_speed(f, 1, USBIF_SPEED_HIGH);
	struct usbif_conn_sring *s = pvusb_front_conn_sring(f);
	__atomic_store_n(&s->hdr.req_prod, s->hdr.req_prod + 5000, __ATOMIC_RELEASE);
	pvusb_front_kick(f);
	CHECK(daemon_ok(&D, "{\"cmd\":\"detach\",\"frontend\":\"flood\",\"port\":1}"), "detach under flood");
	usleep(50000);
	CHECK(!strcmp(hc_state("flood"), "broken"), "conn ring flood: controller broken (%s)", hc_state("flood"));
	good_still_works("after conn ring flood");
	pvusb_front_close(f);
	usleep(50000);
	CHECK(!strcmp(hc_state("flood"), "waiting"), "a broken controller recovers when its frontend goes");
}

/* ---- handshakes a library would never send ---- */

static json_object *send_connect(const char *json, int *fds, int nfds)
{
	int s = pvusb_unix_connect(D.sock);
	if (s < 0)
		return NULL;
	char cbuf[CMSG_SPACE(3 * sizeof(int))] = {0};
	struct iovec iov = {.iov_base = (void *)json, .iov_len = strlen(json)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (nfds) {
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));
	}
	sendmsg(s, &mh, 0);
	char buf[1024];
	ssize_t n = recv(s, buf, sizeof(buf) - 1, 0);
	close(s);
	if (n <= 0)
		return NULL;
	buf[n] = 0;
	return json_tokener_parse(buf);
}

static bool refused(json_object *o, const char *needle)
{
	json_object *v;
	bool ok = o && json_object_object_get_ex(o, "ok", &v) && !json_object_get_boolean(v) &&
		  json_object_object_get_ex(o, "error", &v) && strstr(json_object_get_string(v), needle);
	if (!ok)
		fprintf(stderr, "  reply: %s\n", o ? json_object_to_json_string(o) : "(none)");
	json_object_put(o);
	return ok;
}

static void test_bad_handshakes(void)
{
	const char *msg = "{\"cmd\":\"frontend-connect\",\"frontend\":\"good\",\"devid\":0,\"pages\":4,"
			  "\"urb-ring-ref\":0,\"conn-ring-ref\":1}";
	CHECK(refused(send_connect(msg, NULL, 0), "3 fds"), "connect without fds");
	int mfd = memfd_create("x", MFD_ALLOW_SEALING);
	CHECK(ftruncate(mfd, 4 * 4096) == 0, "memfd size");
	int fds[3] = {mfd, eventfd(0, 0), eventfd(0, 0)};
	CHECK(refused(send_connect(msg, fds, 3), "F_SEAL_SHRINK"), "unsealed memory refused");
	fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK);
	const char *big = "{\"cmd\":\"frontend-connect\",\"frontend\":\"good\",\"devid\":0,\"pages\":8,"
			  "\"urb-ring-ref\":0,\"conn-ring-ref\":1}";
	CHECK(refused(send_connect(big, fds, 3), "not 8 pages"), "page count larger than the memory");
	const char *refs = "{\"cmd\":\"frontend-connect\",\"frontend\":\"good\",\"devid\":0,\"pages\":4,"
			   "\"urb-ring-ref\":1,\"conn-ring-ref\":1}";
	CHECK(refused(send_connect(refs, fds, 3), "distinct"), "both rings on one page");
	int notev[3] = {mfd, mfd, fds[2]};
	CHECK(refused(send_connect(msg, notev, 3), "eventfd"), "a kick fd that is not an eventfd");
	CHECK(refused(send_connect("{\"cmd\":\"attach\",\"frontend\":\"good\",\"port\":1,\"device\":\"nosuch\"}",
				   NULL, 0), "unknown device"), "unknown device name");
	CHECK(refused(send_connect("not json at all", NULL, 0), "not a JSON command"), "garbage command");
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	good_still_works("after bad handshakes");
}

int main(void)
{
	if (daemon_start(&D) < 0)
		return 1;
	CHECK(daemon_ok(&D, "{\"cmd\":\"hc-create\",\"frontend\":\"bad\",\"ports\":2}"), "hc bad");
	CHECK(daemon_ok(&D, "{\"cmd\":\"hc-create\",\"frontend\":\"good\",\"ports\":2}"), "hc good");
	CHECK(daemon_ok(&D, "{\"cmd\":\"hc-create\",\"frontend\":\"flood\",\"ports\":2}"), "hc flood");
	CHECK(daemon_ok(&D, "{\"cmd\":\"attach\",\"frontend\":\"bad\",\"port\":1,\"device\":\"sourcesink\"}"), "a1");
	CHECK(daemon_ok(&D, "{\"cmd\":\"attach\",\"frontend\":\"bad\",\"port\":2,\"device\":\"tablet\"}"), "a2");
	CHECK(daemon_ok(&D, "{\"cmd\":\"attach\",\"frontend\":\"good\",\"port\":1,\"device\":\"sourcesink\"}"), "a3");
	CHECK(daemon_ok(&D, "{\"cmd\":\"attach\",\"frontend\":\"flood\",\"port\":1,\"device\":\"sourcesink\"}"), "a4");
	CHECK(!daemon_ok(&D, "{\"cmd\":\"hc-create\",\"frontend\":\"x\",\"ports\":32}"), "32 ports refused");
	CHECK(!daemon_ok(&D, "{\"cmd\":\"hc-create\",\"frontend\":\"x\",\"usb-ver\":3}"), "usb-ver 3 refused");
	CHECK(daemon_ok(&D, "{\"cmd\":\"hc-create\",\"frontend\":\"old\",\"usb-ver\":1,\"ports\":1}"), "usb 1.1 hc");
	CHECK(!daemon_ok(&D, "{\"cmd\":\"attach\",\"frontend\":\"old\",\"port\":1,\"device\":\"sourcesink\"}"),
	      "high-speed device refused on USB 1.1");
	CHECK(daemon_ok(&D, "{\"cmd\":\"attach\",\"frontend\":\"old\",\"port\":1,\"device\":\"sourcesink:speed=full\"}"),
	      "full-speed device accepted on USB 1.1");

	struct pvusb_front *f = front_connect(&D, "bad", 0);
	CHECK(f != NULL, "hostile frontend connects");
	if (f) {
		pvusb_front_on_raw_response(f, on_raw, NULL);
		wait_port_speed(f, 2, USBIF_SPEED_FULL);
		test_malformed(f);
		test_duplicate_id(f);
		test_spurious_events(f);
		test_producer_ahead(f);
		pvusb_front_close(f);
	}
	test_conn_flood();
	test_bad_handshakes();
	daemon_stop(&D);
	return t_summary("test_hostile");
}
