/* SPDX-License-Identifier: MIT */
/* pvusbd internals: the controller table and the control-socket commands. */
#ifndef PVUSBD_DAEMON_H
#define PVUSBD_DAEMON_H

#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <sys/types.h>

#include "pvusb/core.h"

#define PVUSBD_MAX_HCS 64
#define PVUSBD_DEFAULT_STATE "/var/lib/pvusb/state.json"
#define PVUSBD_DEFAULT_CONFIG_DIR "/etc/pvusb/domains.d"

/* What the daemon assigned to one port: the truth the state file keeps.
 * A device that could not be opened (unplugged while pvusbd was down) stays
 * assigned as `missing` and is opened again when it appears. */
struct pvusbd_port {
	char device[280]; /* the name the user gave; "" = port free */
	char busid[32];   /* host devices: the bus path it had */
	bool missing;
};

/* One controller the daemon serves. */
struct pvusbd_hc {
	struct pvusb_hc *hc;
	char frontend[64];
	unsigned devid;
	unsigned usb_ver, num_ports;
	char transport[8]; /* "local" or "xen" */
	int fe_fd; /* the frontend's socket while one is connected, else -1 */
	struct pvusbd_port ports[USBIF_MAX_PORTNR + 1];
};

struct pvusbd {
	int listen_fd, epoll_fd, signal_fd, timer_fd;
	const char *sock_path;
	const char *state_path;  /* NULL: keep no state (tests, --no-state) */
	const char *config_dir;  /* domain configs applied at start, or NULL */
	gid_t group;             /* besides root, this group may use the socket */
	bool has_group;
	bool stopping;
	/* host devices (bus paths) the previous run held, until the start is done */
#define PVUSBD_MAX_HELD 256
	char held[PVUSBD_MAX_HELD][32];
	unsigned nheld;
	struct pvusbd_hc hcs[PVUSBD_MAX_HCS];
	struct pvusbd_xen *xen; /* xenstore side (xen.c); NULL when not on Xen */
};

/* A request being answered: the parsed message and the fds it carried. */
struct pvusbd_req {
	int client_fd;
	json_object *msg;
	int fds[3];
	int nfds;
	bool keep_open; /* the connection became a frontend link */
};

/* Fields of a JSON message or file, type-checked: the string value or NULL;
 * an integer within [lo, hi] into *out (def when absent), -1 when wrong. */
const char *pvusbd_get_str(json_object *m, const char *key);
int pvusbd_get_int(json_object *m, const char *key, long lo, long hi, long def, long *out);

/* Run one command; returns the reply object (never NULL). */
json_object *pvusbd_dispatch(struct pvusbd *d, struct pvusbd_req *r);

struct pvusbd_hc *pvusbd_find_hc(struct pvusbd *d, const char *frontend, unsigned devid);
/* The frontend on fd went away: disconnect its controller. */
void pvusbd_frontend_gone(struct pvusbd *d, int fd);
void pvusbd_destroy_all(struct pvusbd *d);

/* state.c: the state file (design.md section 4). save writes it atomically
 * (temporary file, fsync, rename) and is called after every change; load
 * re-creates controllers and assignments at start. */
int pvusbd_state_save(struct pvusbd *d);
int pvusbd_state_load(struct pvusbd *d);
/* After every controller is back (local ones from the state file, xen ones
 * from xenstore): devices the last run held and nobody holds now go back
 * to their kernel drivers (a crash left them without). */
void pvusbd_state_give_back(struct pvusbd *d);

/* assign.c: putting devices on ports with xl's rules. */
struct pvusbd_hc *pvusbd_hc_new(struct pvusbd *d, const char *frontend, int devid, unsigned usb_ver,
				unsigned ports, char *err, size_t errlen);
void pvusbd_hc_free(struct pvusbd *d, struct pvusbd_hc *h);
/* Attach `device` for frontend fe: ctrl < 0 and port 0 choose as xl does.
 * On success *hc_out and *port_out say where it went. */
int pvusbd_assign(struct pvusbd *d, const char *fe, int ctrl, unsigned port, const char *device,
		  struct pvusbd_hc **hc_out, unsigned *port_out, char *err, size_t errlen);
int pvusbd_unassign(struct pvusbd *d, struct pvusbd_hc *h, unsigned port, char *err, size_t errlen);
/* Record an assignment read from the state file and try to open it. */
void pvusbd_restore_port(struct pvusbd *d, struct pvusbd_hc *h, unsigned port, const char *device,
			 const char *busid);
/* Open every missing device that has come back. */
void pvusbd_retry_missing(struct pvusbd *d);

/* apply.c: domain configs (pvusb.cfg(5)). */
struct pvusb_cfg;
/* Apply a parsed config for frontend fe; appends a line per step to the
 * JSON array done. All or nothing; err names path:line: key. */
int pvusbd_apply(struct pvusbd *d, const char *path, const struct pvusb_cfg *cfg, const char *fe,
		 json_object *done, char *err, size_t errlen);
void pvusbd_config_dir_apply(struct pvusbd *d);
/* Whether a host device (bus path) is on some port. */
bool pvusbd_busid_assigned(struct pvusbd *d, const char *busid);

/*
 * xen.c: the xen transport's xenstore side. Controllers appear and go with
 * the backend directories libxl writes (xl usbctrl-attach/-detach, usbctrl=
 * in a domain config); their frontend name is the domain's name, and they
 * also answer to the domid. pvusbd_xen_init returns the fd to add to the
 * epoll set, or a negative errno when there is no xenstore here (then the
 * rest do nothing). Without libxen-dev they are stubs.
 */
#ifdef PVUSB_HAVE_XEN
int pvusbd_xen_init(struct pvusbd *d);
bool pvusbd_xen_owns_fd(struct pvusbd *d, int fd);
void pvusbd_xen_event(struct pvusbd *d);
void pvusbd_xen_fini(struct pvusbd *d);
/* The xen controller of domain `domid` (a decimal string) and devid. */
struct pvusbd_hc *pvusbd_xen_find_hc(struct pvusbd *d, const char *domid, unsigned devid);
/*
 * Record in xenstore what now sits on port `port` of h: call it after a
 * successful pvusbd_assign (busid = the port's host bus id, "" for an
 * emulated device) and after pvusbd_unassign (busid NULL). A host bus id is
 * written to the backend's port/N, where `xl usb-list` and `xl
 * usbdev-detach`/`usbctrl-detach` read it; otherwise port/N is set to "".
 * (Emulated names are never written there: libxl resolves every non-empty
 * port/N through /sys/bus/usb/devices and would fail the whole controller's
 * removal on one it cannot find.) The daemon's own watch then sees no
 * change. Returns 0, also for a non-xen h (nothing to do), or a negative
 * errno when xenstore refused the write (the attachment itself stands).
 */
int pvusbd_xen_port_write(struct pvusbd *d, struct pvusbd_hc *h, unsigned port, const char *busid);
#else
static inline int pvusbd_xen_init(struct pvusbd *d) { return -ENOSYS; }
static inline bool pvusbd_xen_owns_fd(struct pvusbd *d, int fd) { return false; }
static inline void pvusbd_xen_event(struct pvusbd *d) {}
static inline void pvusbd_xen_fini(struct pvusbd *d) {}
static inline struct pvusbd_hc *pvusbd_xen_find_hc(struct pvusbd *d, const char *domid, unsigned devid)
{
	return NULL;
}
static inline int pvusbd_xen_port_write(struct pvusbd *d, struct pvusbd_hc *h, unsigned port,
					const char *busid)
{
	return 0;
}
#endif

#endif
