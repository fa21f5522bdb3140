/* SPDX-License-Identifier: MIT */
/*
 * pvusb-usbipd against a USB/IP client written from the spec: devlist,
 * import (unknown, busy), control, bulk larger than one ring request (data
 * checked), isochronous IN after SET_INTERFACE, unlink of a pending
 * interrupt URB (RET_UNLINK -ECONNRESET in place of RET_SUBMIT), unlink of
 * an unknown seqnum, a client that breaks the protocol (only its own
 * connection goes), and a device detached under its client (the client sees
 * the connection close). The real Linux client runs in tests/vm.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "pvusb/usbip.h"
#include "pvusb/usbmon.h"

#define USBMON_SNAPLEN_TEST (64 + 1024 * 16 + 300 * 1024)

#define FE "usbip"

static struct daemon D;
static int tcp_port;
static char pcap_path[128];

static pid_t start_usbipd(void)
{
	const char *bin = getenv("PVUSB_USBIPD");
	char port[16];
	snprintf(port, sizeof(port), "%d", tcp_port);
	pid_t pid = fork();
	if (pid == 0) {
		execl(bin, bin, "-q", "-s", D.sock, "-n", FE, "-l", "127.0.0.1", "-p", port, "-w", pcap_path,
		      (char *)NULL);
		_exit(127);
	}
	return pid;
}

static int dial(void)
{
	for (int i = 0; i < 100; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)tcp_port)};
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		struct timeval tv = {.tv_sec = 3};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			return fd;
		close(fd);
		usleep(50000);
	}
	return -1;
}

static bool read_all(int fd, void *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = recv(fd, (uint8_t *)buf + got, n - got, 0);
		if (r <= 0)
			return false;
		got += (size_t)r;
	}
	return true;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Devlist: the number of devices, and the first device's busid and ids. */
static int devlist(char *busid, uint16_t *vid, uint16_t *pid, uint32_t *speed)
{
	int fd = dial();
	uint8_t req[8];
	usbip_put_op_common(req, USBIP_OP_REQ_DEVLIST, 0);
	send(fd, req, 8, 0);
	uint8_t head[12];
	int n = -1;
	if (read_all(fd, head, 12) && be32(head) == (USBIP_VERSION << 16 | USBIP_OP_REP_DEVLIST)) {
		n = (int)be32(head + 8);
		for (int i = 0; i < n; i++) {
			uint8_t rec[USBIP_DEVICE_SIZE], ifs[4 * 32];
			if (!read_all(fd, rec, sizeof(rec)) || !read_all(fd, ifs, 4u * rec[0x137]))
				return -2;
			if (i == 0) {
				memcpy(busid, rec + 0x100, 32);
				*vid = (uint16_t)(rec[0x12c] << 8 | rec[0x12d]);
				*pid = (uint16_t)(rec[0x12e] << 8 | rec[0x12f]);
				*speed = be32(rec + 0x128);
			}
		}
		char c;
		if (recv(fd, &c, 1, 0) != 0) /* then the server closes */
			n = -3;
	}
	close(fd);
	return n;
}

/* Import; the connection (status OK) or -status. `devid` from the record. */
static int import(const char *busid, uint32_t *devid)
{
	int fd = dial();
	uint8_t req[USBIP_IMPORT_REQ_SIZE] = {0};
	usbip_put_op_common(req, USBIP_OP_REQ_IMPORT, 0);
	strncpy((char *)req + 8, busid, 31);
	send(fd, req, sizeof(req), 0);
	uint8_t head[8];
	if (!read_all(fd, head, 8) || be32(head) != (USBIP_VERSION << 16 | USBIP_OP_REP_IMPORT)) {
		close(fd);
		return -100;
	}
	uint32_t st = be32(head + 4);
	if (st) {
		close(fd);
		return -(int)st;
	}
	uint8_t rec[USBIP_DEVICE_SIZE];
	if (!read_all(fd, rec, sizeof(rec)) || strcmp((char *)rec + 0x100, busid) != 0) {
		close(fd);
		return -101;
	}
	*devid = be32(rec + 0x120) << 16 | be32(rec + 0x124);
	return fd;
}

static uint32_t next_seq = 1;

static uint32_t submit(int fd, uint32_t devid, unsigned ep, bool in, const uint8_t setup[8], const void *out,
		       uint32_t len, int np, uint32_t pkt)
{
	struct usbip_header h = {.command = USBIP_CMD_SUBMIT, .seqnum = next_seq++, .devid = devid,
				 .direction = in ? USBIP_DIR_IN : USBIP_DIR_OUT, .ep = ep};
	h.u.submit.transfer_buffer_length = (int32_t)len;
	h.u.submit.number_of_packets = np;
	h.u.submit.transfer_flags = in ? USBIP_URB_DIR_IN : 0;
	if (setup)
		memcpy(h.u.submit.setup, setup, 8);
	uint8_t w[USBIP_HEADER_SIZE];
	usbip_put_header(w, &h);
	send(fd, w, sizeof(w), MSG_NOSIGNAL);
	if (!in && len)
		send(fd, out, len, MSG_NOSIGNAL);
	for (int k = 0; k < np; k++) {
		struct usbip_iso_desc d = {.offset = (uint32_t)k * pkt, .length = pkt};
		uint8_t b[16];
		usbip_put_iso_desc(b, &d);
		send(fd, b, 16, MSG_NOSIGNAL);
	}
	return h.seqnum;
}

struct reply {
	uint32_t command, seqnum;
	int32_t status, actual, np;
	uint8_t *data;
};

/* Read one reply; its IN data (actual bytes, when `in`) and np iso descriptors. */
static bool get_reply(int fd, bool in, struct reply *r)
{
	uint8_t h[USBIP_HEADER_SIZE];
	if (!read_all(fd, h, sizeof(h)))
		return false;
	r->command = be32(h);
	r->seqnum = be32(h + 4);
	r->status = (int32_t)be32(h + 20);
	r->actual = (int32_t)be32(h + 24);
	r->np = (int32_t)be32(h + 32);
	free(r->data);
	r->data = NULL;
	if (r->command != USBIP_RET_SUBMIT)
		return true;
	size_t n = (in ? (size_t)r->actual : 0) + (size_t)r->np * 16;
	r->data = malloc(n + 1);
	return read_all(fd, r->data, n);
}

static int control(int fd, uint32_t devid, uint8_t rt, uint8_t req, uint16_t val, uint16_t idx, uint8_t *buf,
		   uint16_t len, struct reply *r)
{
	uint8_t setup[8] = {rt, req, (uint8_t)val, (uint8_t)(val >> 8), (uint8_t)idx, (uint8_t)(idx >> 8),
			    (uint8_t)len, (uint8_t)(len >> 8)};
	bool in = rt & 0x80;
	uint32_t seq = submit(fd, devid, 0, in, setup, buf, in ? len : 0, 0, 0);
	if (!get_reply(fd, in, r) || r->seqnum != seq)
		return -1000;
	if (in && r->actual > 0)
		memcpy(buf, r->data, (size_t)r->actual);
	return r->status ? r->status : r->actual;
}

static bool pattern_ok(const uint8_t *b, size_t n, unsigned mps)
{
	for (size_t k = 0; k < n; k++)
		if (b[k] != (uint8_t)((k % mps) % 63))
			return false;
	return true;
}

static void check_data_paths(int fd, uint32_t devid)
{
	struct reply r = {0};
	uint8_t dd[18];
	CHECK_EQ(control(fd, devid, 0x80, 6, 0x0100, 0, dd, 18, &r), 18, "GET_DESCRIPTOR(device) length");
	CHECK(dd[8] == 0x09 && dd[9] == 0x12 && dd[10] == 0x00 && dd[11] == 0x75, "device descriptor is 1209:7500");
	CHECK_EQ(control(fd, devid, 0x00, 9, 1, 0, NULL, 0, &r), 0, "SET_CONFIGURATION 1");

	/* bulk IN of 200 KiB: four ring requests, one RET_SUBMIT with all the data */
	uint32_t len = 200 * 1024;
	uint32_t seq = submit(fd, devid, 1, true, NULL, NULL, len, 0, 0);
	CHECK(get_reply(fd, true, &r) && r.seqnum == seq && r.status == 0, "bulk IN 200 KiB answered");
	CHECK_EQ(r.actual, len, "bulk IN actual length");
	CHECK(r.data && pattern_ok(r.data, len, 512), "bulk IN data is the source pattern");

	/* bulk OUT of 100 KiB in the pattern the sink checks */
	uint8_t *out = malloc(100 * 1024);
	for (uint32_t k = 0; k < 100 * 1024; k++)
		out[k] = (uint8_t)((k % 512) % 63);
	seq = submit(fd, devid, 2, false, NULL, out, 100 * 1024, 0, 0);
	CHECK(get_reply(fd, false, &r) && r.seqnum == seq, "bulk OUT answered");
	CHECK(r.status == 0 && r.actual == 100 * 1024, "bulk OUT: status %d actual %d", r.status, r.actual);
	free(out);

	/* several in flight at once, answered by seqnum */
	uint32_t s1 = submit(fd, devid, 1, true, NULL, NULL, 16384, 0, 0);
	uint32_t s2 = submit(fd, devid, 1, true, NULL, NULL, 16384, 0, 0);
	uint32_t s3 = submit(fd, devid, 1, true, NULL, NULL, 16384, 0, 0);
	unsigned seen = 0;
	for (int i = 0; i < 3 && get_reply(fd, true, &r); i++)
		seen |= (r.seqnum == s1) << 0 | (r.seqnum == s2) << 1 | (r.seqnum == s3) << 2;
	CHECK_EQ(seen, 7, "three bulk IN in flight: three replies, one per seqnum");

	/* isochronous IN on alternate setting 1 */
	CHECK_EQ(control(fd, devid, 0x01, 11, 1, 0, NULL, 0, &r), 0, "SET_INTERFACE 0 alt 1");
	seq = submit(fd, devid, 4, true, NULL, NULL, 8 * 1024, 8, 1024);
	CHECK(get_reply(fd, true, &r) && r.seqnum == seq && r.status == 0, "iso IN answered");
	CHECK_EQ(r.np, 8, "iso IN: 8 descriptors back");
	int32_t sum = 0;
	bool offsets_ok = true;
	for (int k = 0; k < r.np && r.data; k++) {
		const uint8_t *d = r.data + r.actual + 16 * k;
		sum += (int32_t)be32(d + 8);
		offsets_ok &= be32(d) == (uint32_t)k * 1024 && be32(d + 4) == 1024;
	}
	CHECK(sum == r.actual && sum > 0, "iso IN: data packed, actual %d = sum of packets %d", r.actual, sum);
	CHECK(offsets_ok, "iso IN: each packet's offset and length returned");
	CHECK(r.data && pattern_ok(r.data, 1024, 1024), "iso IN: first packet is the pattern");
	CHECK_EQ(control(fd, devid, 0x01, 11, 0, 0, NULL, 0, &r), 0, "SET_INTERFACE 0 alt 0");

	/* unlink of a seqnum never seen: RET_UNLINK status 0 */
	struct usbip_header h = {.command = USBIP_CMD_UNLINK, .seqnum = next_seq++, .devid = devid};
	h.u.unlink.unlink_seqnum = 99999;
	uint8_t w[48];
	usbip_put_header(w, &h);
	send(fd, w, 48, 0);
	CHECK(get_reply(fd, false, &r) && r.command == USBIP_RET_UNLINK && r.seqnum == h.seqnum && r.status == 0,
	      "unlink of an unknown seqnum: RET_UNLINK 0");
	free(r.data);
}

/* The keyboard's interrupt IN stays pending with no key pressed: unlink it. */
static void check_unlink(int fd, uint32_t devid)
{
	struct reply r = {0};
	CHECK_EQ(control(fd, devid, 0x00, 9, 1, 0, NULL, 0, &r), 0, "keyboard SET_CONFIGURATION 1");
	uint32_t victim = submit(fd, devid, 1, true, NULL, NULL, 8, 0, 0);
	usleep(100000);
	struct usbip_header h = {.command = USBIP_CMD_UNLINK, .seqnum = next_seq++, .devid = devid};
	h.u.unlink.unlink_seqnum = victim;
	uint8_t w[48];
	usbip_put_header(w, &h);
	send(fd, w, 48, 0);
	CHECK(get_reply(fd, false, &r), "a reply to the unlink");
	CHECK(r.command == USBIP_RET_UNLINK && r.seqnum == h.seqnum, "RET_UNLINK with the unlink's seqnum (got command %u seq %u)",
	      r.command, r.seqnum);
	CHECK_EQ(r.status, -104, "RET_UNLINK status -ECONNRESET");
	/* no RET_SUBMIT for the victim may follow: the next reply is for a new request */
	uint8_t dd[18];
	CHECK_EQ(control(fd, devid, 0x80, 6, 0x0100, 0, dd, 18, &r), 18,
		 "next reply belongs to the next request (no late RET_SUBMIT)");
	free(r.data);
}

static void check_hostile(const char *busid)
{
	uint32_t devid;
	int fd = import(busid, &devid);
	CHECK(fd >= 0, "import for the wrong-devid client");
	uint8_t setup[8] = {0x80, 6, 0, 1, 0, 0, 18, 0};
	submit(fd, devid ^ 0x10000, 0, true, setup, NULL, 18, 0, 0);
	char c;
	CHECK(recv(fd, &c, 1, 0) == 0, "a submit with another devid: the server closes the connection");
	close(fd);
	usleep(100000);
	fd = import(busid, &devid);
	CHECK(fd >= 0, "after it, the device can be imported again");
	uint8_t junk[48] = {0, 0, 0, 7};
	send(fd, junk, sizeof(junk), 0);
	CHECK(recv(fd, &c, 1, 0) == 0, "an unknown command: the server closes the connection");
	close(fd);
	usleep(100000);
	fd = import(busid, &devid);
	CHECK(fd >= 0, "and again");
	/* a length beyond what the server takes */
	struct usbip_header h = {.command = USBIP_CMD_SUBMIT, .seqnum = 1, .devid = devid, .ep = 2};
	h.u.submit.transfer_buffer_length = 0x7fffffff;
	uint8_t w[48];
	usbip_put_header(w, &h);
	send(fd, w, 48, 0);
	CHECK(recv(fd, &c, 1, 0) == 0, "a 2 GiB OUT: the server closes the connection");
	close(fd);
	/* an unknown op code before import: closed with no reply */
	fd = dial();
	uint8_t op[8];
	usbip_put_op_common(op, 0x8042, 0);
	send(fd, op, 8, 0);
	CHECK(recv(fd, &c, 1, 0) == 0, "an unknown op code: closed with no reply");
	close(fd);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The capture: a pcap of usbmon records (linktype 220), each submit with
 * exactly one completion of the same id, the descriptor's bytes in the
 * GET_DESCRIPTOR completion, the unlinked URB completed with -ECONNRESET.
 * Then tshark, when installed, must decode it as USB. */
static void check_capture(void)
{
	FILE *f = fopen(pcap_path, "rb");
	CHECK(f != NULL, "the capture file exists");
	if (!f)
		return;
	uint8_t gh[24];
	CHECK(fread(gh, 1, 24, f) == 24 && le32(gh) == 0xa1b2c3d4 && le32(gh + 20) == 220,
	      "pcap header: microseconds, linktype 220");
	enum { MAXREC = 4096 };
	static uint64_t sub[MAXREC];
	unsigned nsub = 0, ncomp = 0, unmatched = 0, bad_len = 0, saw_desc = 0, saw_reset = 0;
	uint8_t rh[16];
	static uint8_t rec[USBMON_SNAPLEN_TEST];
	while (fread(rh, 1, 16, f) == 16) {
		uint32_t incl = le32(rh + 8);
		if (incl < 64 || incl > sizeof(rec) || fread(rec, 1, incl, f) != incl) {
			bad_len++;
			break;
		}
		uint64_t id = (uint64_t)le32(rec + 4) << 32 | le32(rec);
		bad_len += le32(rec + 36) != incl - 64;
		if (rec[8] == 'S' && nsub < MAXREC) {
			sub[nsub++] = id;
		} else if (rec[8] == 'C') {
			ncomp++;
			unsigned k = 0;
			while (k < nsub && sub[k] != id)
				k++;
			if (k == nsub)
				unmatched++;
			else
				sub[k] = ~0ull; /* one completion per submit */
			if (rec[9] == 2 && le32(rec + 32) == 18 && incl == 64 + 18 && rec[64] == 18 && rec[65] == 1)
				saw_desc++;
			if ((int32_t)le32(rec + 28) == -104)
				saw_reset++;
		}
	}
	fclose(f);
	CHECK(bad_len == 0, "every record's len_cap matches its length");
	CHECK(nsub > 20, "the capture holds the traffic (%u submits)", nsub);
	CHECK_EQ(unmatched, 0, "no completion without its submit");
	CHECK(saw_desc > 0, "a GET_DESCRIPTOR completion carries the 18 descriptor bytes");
	CHECK(saw_reset > 0, "the unlinked URB completes with -ECONNRESET");
	CHECK(ncomp <= nsub, "at most one completion per submit (%u for %u)", ncomp, nsub);
	if (system("command -v tshark >/dev/null 2>&1") != 0) {
		printf("tshark is not installed: the capture was not decoded by Wireshark's dissector\n");
		return;
	}
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "tshark -r %s 2>/dev/null", pcap_path);
	FILE *p = popen(cmd, "r");
	char line[512];
	unsigned lines = 0, desc = 0, iso = 0, bulk = 0, bad = 0;
	while (p && fgets(line, sizeof(line), p)) {
		lines++;
		desc += strstr(line, "GET DESCRIPTOR Response DEVICE") != NULL;
		iso += strstr(line, "URB_ISOCHRONOUS") != NULL;
		bulk += strstr(line, "URB_BULK") != NULL;
		bad += strstr(line, "Malformed") != NULL || strstr(line, "appears to have been cut short") != NULL;
	}
	CHECK(p && pclose(p) == 0, "tshark reads the capture");
	CHECK_EQ(lines, nsub + ncomp, "tshark: one line per record");
	CHECK(desc > 0 && iso > 0 && bulk > 0, "tshark decodes GET DESCRIPTOR, isochronous and bulk URBs");
	CHECK_EQ(bad, 0, "tshark: no malformed record");
}

/* Clients sending noise after a valid import, in random pieces (a fixed seed,
 * so a failure repeats): each loses its connection or gets replies; the
 * server stays up and keeps serving. Headers are often valid SUBMITs with
 * random fields, so the payload and unlink paths see garbage too. */
static void check_noise(const char *busid)
{
	uint32_t rng = 12345;
	unsigned imported = 0;
	for (int round = 0; round < 150; round++) {
		uint32_t devid;
		int fd = import(busid, &devid);
		if (fd < 0) {
			usleep(20000);
			continue;
		}
		imported++;
		struct timeval tv = {.tv_usec = 20000};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		uint8_t buf[2048];
		for (int k = 0; k < 8; k++) {
			size_t n = 0;
			while (n + 48 <= sizeof(buf) && (rng = rng * 1103515245 + 12345) % 4) {
				struct usbip_header h = {.command = 1 + (rng >> 8) % 2, .seqnum = rng >> 4,
							 .devid = (rng >> 20) % 8 ? devid : rng, .direction = (rng >> 3) % 2,
							 .ep = (rng >> 5) % 6};
				h.u.submit.transfer_buffer_length = (int32_t)((rng >> 11) % 3 ? (rng >> 9) % 300 : rng);
				h.u.submit.number_of_packets = (int32_t)((rng >> 13) % 40) - 4;
				usbip_put_header(buf + n, &h);
				n += 48;
			}
			for (size_t i = n; i < n + 64 && i < sizeof(buf); i++)
				buf[i] = (uint8_t)((rng = rng * 1103515245 + 12345) >> 16);
			send(fd, buf, n + 64 < sizeof(buf) ? n + 64 : sizeof(buf), MSG_NOSIGNAL);
			while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
				;
		}
		close(fd);
	}
	CHECK(imported > 100, "noise: %u of 150 noisy clients imported the device", imported);
	char b[32];
	uint16_t vid, pid;
	uint32_t speed;
	int n = -1;
	for (int i = 0; i < 60 && n != 1; i++, usleep(50000))
		n = devlist(b, &vid, &pid, &speed);
	CHECK_EQ(n, 1, "after 150 noisy clients the device is offered again");
	uint32_t devid;
	int fd = import(busid, &devid);
	struct reply r = {0};
	uint8_t dd[18];
	CHECK(fd >= 0 && control(fd, devid, 0x80, 6, 0x0100, 0, dd, 18, &r) == 18,
	      "and a well-behaved client gets its descriptor");
	free(r.data);
	if (fd >= 0)
		close(fd);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (daemon_start(&D) < 0)
		return 1;
	tcp_port = 20000 + (int)(getpid() % 20000);
	snprintf(pcap_path, sizeof(pcap_path), "%s/capture.pcap", D.dir);
	char img[128];
	snprintf(img, sizeof(img), "%s/disk.img", D.dir);
	CHECK(daemon_ok(&D, "{\"cmd\":\"hc-create\",\"frontend\":\"" FE "\",\"usb-ver\":2,\"ports\":4}"),
	      "controller for the server");
	CHECK(daemon_ok(&D, "{\"cmd\":\"attach\",\"frontend\":\"" FE "\",\"port\":1,\"device\":\"sourcesink\"}"),
	      "attach sourcesink");
	pid_t srv = start_usbipd();

	char busid[32] = "";
	uint16_t vid = 0, pid = 0;
	uint32_t speed = 0;
	int n = -1;
	for (int i = 0; i < 50 && n != 1; i++, usleep(50000))
		n = devlist(busid, &vid, &pid, &speed);
	CHECK_EQ(n, 1, "devlist: one device");
	CHECK(strcmp(busid, "pvusb-1") == 0, "busid pvusb-1 (got '%s')", busid);
	CHECK(vid == 0x1209 && pid == 0x7500 && speed == USBIP_SPEED_HIGH, "devlist: 1209:7500 high speed");

	uint32_t devid = 0, devid2;
	CHECK_EQ(import("pvusb-9", &devid2), -USBIP_ST_NODEV, "import of an unknown busid: ST_NODEV");
	int fd = import("pvusb-1", &devid);
	CHECK(fd >= 0, "import pvusb-1");
	CHECK_EQ(import("pvusb-1", &devid2), -USBIP_ST_DEV_BUSY, "second import: ST_DEV_BUSY");
	CHECK_EQ(devlist(busid, &vid, &pid, &speed), 0, "devlist leaves out the imported device");
	if (fd >= 0) {
		check_data_paths(fd, devid);
		close(fd);
	}

	CHECK(daemon_ok(&D, "{\"cmd\":\"attach\",\"frontend\":\"" FE "\",\"port\":2,\"device\":\"keyboard\"}"),
	      "attach keyboard");
	int kfd = -1;
	for (int i = 0; i < 50 && kfd < 0; i++, usleep(50000))
		kfd = import("pvusb-2", &devid2);
	CHECK(kfd >= 0, "import the keyboard, attached while the server runs");
	if (kfd >= 0) {
		check_unlink(kfd, devid2);
		CHECK(daemon_ok(&D, "{\"cmd\":\"detach\",\"frontend\":\"" FE "\",\"port\":2}"), "detach keyboard");
		char c;
		CHECK(recv(kfd, &c, 1, 0) == 0, "the keyboard's client sees its connection closed");
		close(kfd);
	}
	check_hostile("pvusb-1");
	check_noise("pvusb-1");
	/* a client that vanishes with the ring full of its URBs: the device is offered again */
	fd = import("pvusb-1", &devid);
	CHECK(fd >= 0, "import for the vanishing client");
	for (int i = 0; i < 24 && fd >= 0; i++)
		submit(fd, devid, 1, true, NULL, NULL, 65536, 0, 0);
	if (fd >= 0)
		close(fd);
	n = -1;
	for (int i = 0; i < 60 && n != 1; i++, usleep(50000))
		n = devlist(busid, &vid, &pid, &speed);
	CHECK_EQ(n, 1, "the device is offered again after a client vanished with 24 URBs queued");
	CHECK_EQ(devlist(busid, &vid, &pid, &speed), 1, "after all that, devlist shows the sourcesink again");
	int status = -1;
	kill(srv, SIGTERM);
	waitpid(srv, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "pvusb-usbipd exits 0 on SIGTERM");
	check_capture();
	daemon_stop(&D);
	return t_summary("usbip");
}
