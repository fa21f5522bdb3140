/* SPDX-License-Identifier: MIT */
/*
 * Domain configuration files (pvusb.cfg(5)): xl usbctrl/usbdev, xm vusb and
 * the emulated usb/usbdevice keys, read into a fixed-size plan.
 *
 * The file is written by users and scripts, so it is hostile input: lines
 * are bounded before anything else looks at them, every value is copied into
 * a bounded buffer before it is read, nothing is allocated, and the first
 * error ends the parse with "path:line: key: reason".
 *
 * Two stages: the scanner checks the syntax of the whole file and keeps
 * pointers to the values of the keys pvusb reads (all others are skipped);
 * the interpreters then turn those values into the plan, so keys may come
 * in any order.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pvusb/config.h"
#include "pvusb/devname.h"

#define MAX_DEPTH 8     /* nested lists in keys pvusb ignores */
#define MAX_PIECES 64   /* comma-separated items in one spec string */
#define MAX_PORTS 31    /* USBIF_MAX_PORTNR */
#define XM_MAX_PORTS 16 /* what xm accepted */
#define DEFAULT_PORTS 8 /* xl's default controller: version 2, 8 ports */

enum vkind { V_STR, V_NUM, V_WORD, V_LIST };

/* One value as written: p..p+len is the text between the quotes for a
 * string (escapes still in it), the token itself otherwise. */
struct item {
	const char *p;
	unsigned len, line;
	enum vkind kind;
};

/* The keys pvusb reads. */
enum { K_NAME, K_USBCTRL, K_USBDEV, K_VUSB, K_USB, K_USBVERSION, K_USBDEVICE, K_COUNT };
static const char *const key_names[K_COUNT] = {"name", "usbctrl", "usbdev", "vusb",
						"usb", "usbversion", "usbdevice"};

struct setting {
	bool set, is_list;
	unsigned line, n;
	struct item it[PVUSB_CFG_MAX_DEVS];
};

struct parser {
	const char *path;
	const char *s; /* cursor */
	unsigned line;
	char *err;
	size_t errlen;
	struct setting set[K_COUNT];
	struct pvusb_cfg *out;
	char buf[PVUSB_CFG_MAX_LINE + 1]; /* one decoded string */
};

static int fail(struct parser *p, unsigned line, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Messages quote what the file said: control bytes become '?' so that a
 * hostile file cannot send escape sequences to the user's terminal. */
static int fail(struct parser *p, unsigned line, const char *key, const char *fmt, ...)
{
	if (!p->errlen)
		return -EINVAL;
	int n = snprintf(p->err, p->errlen, "%s:%u: %s%s", p->path, line, key ? key : "",
			 key ? ": " : "");
	if (n >= 0 && (size_t)n < p->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	for (char *c = p->err; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	return -EINVAL;
}

/* ---------------------------------------------------------------- scanner */

static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_word(char c) { return is_alpha(c) || is_digit(c) || c == '.'; }

/* Every line within PVUSB_CFG_MAX_LINE, checked first so that nothing
 * later has to think about it. */
static int check_lines(struct parser *p, const char *text)
{
	unsigned line = 1;
	for (const char *s = text, *start = text;; s++) {
		if (*s != '\n' && *s)
			continue;
		if ((size_t)(s - start) > PVUSB_CFG_MAX_LINE)
			return fail(p, line, NULL, "line longer than %d bytes", PVUSB_CFG_MAX_LINE);
		if (!*s)
			return 0;
		line++;
		start = s + 1;
	}
}

/* Skip blanks and comments; newlines too when nl (inside lists). */
static void skip_blank(struct parser *p, bool nl)
{
	for (;;) {
		char c = *p->s;
		if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
			p->s++;
		} else if (c == '#') {
			while (*p->s && *p->s != '\n')
				p->s++;
		} else if (c == '\n' && nl) {
			p->s++;
			p->line++;
		} else {
			return;
		}
	}
}

static int scan_value(struct parser *p, const char *key, unsigned depth, struct item *it,
		      struct setting *cap);

/* A string: quotes ' or ", backslash escapes, on one line. */
static int scan_string(struct parser *p, const char *key, struct item *it)
{
	char q = *p->s++;
	it->p = p->s;
	for (;;) {
		char c = *p->s;
		if (!c || c == '\n')
			return fail(p, p->line, key, "unterminated string: %c is never closed on its line", q);
		if (c == q)
			break;
		p->s += (c == '\\' && p->s[1] && p->s[1] != '\n') ? 2 : 1;
	}
	it->len = (unsigned)(p->s - it->p);
	it->kind = V_STR;
	p->s++;
	return 0;
}

/* A bare token: a number ("1024", "0x10", "-1") or a word ("True"). */
static void scan_token(struct parser *p, struct item *it, enum vkind kind)
{
	it->p = p->s;
	if (*p->s == '-' || *p->s == '+')
		p->s++;
	while (is_word(*p->s))
		p->s++;
	it->len = (unsigned)(p->s - it->p);
	it->kind = kind;
}

/* Keep one list element of a key pvusb reads. */
static int capture(struct parser *p, const char *key, struct setting *cap, const struct item *it)
{
	if (it->kind == V_LIST)
		return fail(p, it->line, key, "a list inside this list is not allowed");
	if (cap->n >= PVUSB_CFG_MAX_DEVS)
		return fail(p, it->line, key, "more than %d entries", PVUSB_CFG_MAX_DEVS);
	cap->it[cap->n++] = *it;
	return 0;
}

static int scan_list(struct parser *p, const char *key, unsigned depth, struct item *it,
		     struct setting *cap)
{
	unsigned open = p->line;
	if (depth >= MAX_DEPTH)
		return fail(p, open, key, "lists nested deeper than %d", MAX_DEPTH);
	p->s++;
	it->kind = V_LIST;
	for (;;) {
		skip_blank(p, true);
		if (*p->s == ']')
			break;
		if (!*p->s)
			return fail(p, open, key, "unterminated list: '[' is never closed by ']'");
		struct item el;
		int rc = scan_value(p, key, depth + 1, &el, NULL);
		if (rc == 0 && cap)
			rc = capture(p, key, cap, &el);
		if (rc < 0)
			return rc;
		skip_blank(p, true);
		if (*p->s == ',') {
			p->s++;
		} else if (*p->s != ']') {
			if (!*p->s)
				return fail(p, open, key, "unterminated list: '[' is never closed by ']'");
			return fail(p, p->line, key, "expected ',' or ']' in the list opened on line %u",
				    open);
		}
	}
	p->s++;
	return 0;
}

static int scan_value(struct parser *p, const char *key, unsigned depth, struct item *it,
		      struct setting *cap)
{
	char c = *p->s;
	it->line = p->line;
	if (c == '\'' || c == '"')
		return scan_string(p, key, it);
	if (c == '[')
		return scan_list(p, key, depth, it, cap);
	if (is_digit(c) || ((c == '-' || c == '+') && is_digit(p->s[1]))) {
		scan_token(p, it, V_NUM);
		return 0;
	}
	if (is_alpha(c)) {
		scan_token(p, it, V_WORD);
		return 0;
	}
	return fail(p, p->line, key, "expected a value: a number, a 'string' or a [list]");
}

static int key_index(const char *k, size_t len)
{
	for (int i = 0; i < K_COUNT; i++)
		if (strlen(key_names[i]) == len && !memcmp(key_names[i], k, len))
			return i;
	return -1;
}

/* "key = value" or "key += [list]": where to keep the value, if pvusb reads it. */
static int begin_setting(struct parser *p, int k, bool append, struct setting **cap)
{
	*cap = NULL;
	if (k < 0)
		return 0;
	struct setting *st = &p->set[k];
	if (st->set && !append)
		return fail(p, p->line, key_names[k], "set twice (first on line %u)", st->line);
	if (st->set && !st->is_list)
		return fail(p, p->line, key_names[k], "+= needs a list on line %u", st->line);
	if (!st->set) {
		st->set = true;
		st->line = p->line;
	}
	*cap = st;
	return 0;
}

/* key = value, ended by a newline, ';', a comment or the end. */
static int scan_setting(struct parser *p)
{
	const char *k = p->s;
	while (is_word(*p->s))
		p->s++;
	size_t klen = (size_t)(p->s - k);
	char key[64];
	snprintf(key, sizeof(key), "%.*s", (int)(klen < 63 ? klen : 63), k);
	skip_blank(p, false);
	bool append = p->s[0] == '+' && p->s[1] == '=';
	if (*p->s != '=' && !append)
		return fail(p, p->line, key, "expected '=' after the key");
	p->s += append ? 2 : 1;
	skip_blank(p, false);
	int ki = key_index(k, klen), rc;
	struct setting *cap;
	if ((rc = begin_setting(p, ki, append, &cap)) < 0)
		return rc;
	struct item it;
	if (*p->s == '\n' || !*p->s)
		return fail(p, p->line, key, "expected a value after '='");
	if ((rc = scan_value(p, key, 0, &it, cap)) < 0)
		return rc;
	if (cap && append && it.kind != V_LIST)
		return fail(p, it.line, key, "+= needs a list");
	if (cap && it.kind != V_LIST) {
		cap->it[0] = it;
		cap->n = 1;
	}
	if (cap)
		cap->is_list = it.kind == V_LIST;
	skip_blank(p, false);
	if (*p->s == ';')
		p->s++;
	else if (*p->s && *p->s != '\n')
		return fail(p, p->line, key, "unexpected text after the value; one setting per line");
	return 0;
}

static int scan_file(struct parser *p)
{
	for (;;) {
		skip_blank(p, true);
		if (*p->s == ';') {
			p->s++;
			continue;
		}
		if (!*p->s)
			return 0;
		if (!is_alpha(*p->s))
			return fail(p, p->line, NULL, "expected a setting like 'key = value'");
		int rc = scan_setting(p);
		if (rc < 0)
			return rc;
	}
}

/* ------------------------------------------------------------ value helpers */

/* The text of a string item with its escapes resolved, into p->buf. */
static const char *decode(struct parser *p, const struct item *it)
{
	size_t o = 0;
	for (unsigned i = 0; i < it->len && o < sizeof(p->buf) - 1; i++) {
		char c = it->p[i];
		if (c == '\\' && i + 1 < it->len) {
			c = it->p[++i];
			c = c == 'n' ? '\n' : c == 't' ? '\t' : c;
		}
		p->buf[o++] = c;
	}
	p->buf[o] = 0;
	return p->buf;
}

/* A decimal number in lo..hi, as in "version must be 1 or 2, got '3'". */
static int number(struct parser *p, unsigned line, const char *key, const char *name,
		  const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
	unsigned long v = 0;
	const char *c = s;
	for (; is_digit(*c) && v <= hi; c++)
		v = v * 10 + (unsigned long)(*c - '0');
	if (c == s || (*c && !is_digit(*c)))
		return fail(p, line, key, "%s%smust be a decimal number, got '%.64s'", name ? name : "",
			    name ? " " : "", s);
	if (s[0] == '0' && s[1])
		return fail(p, line, key, "%s%s'%.64s' has a leading zero: numbers are decimal, not octal",
			    name ? name : "", name ? " " : "", s);
	if (*c || v < lo || v > hi) {
		if (hi == lo + 1)
			return fail(p, line, key, "%s%smust be %lu or %lu, got '%.64s'", name ? name : "",
				    name ? " " : "", lo, hi, s);
		return fail(p, line, key, "%s%smust be %lu..%lu, got '%.64s'", name ? name : "",
			    name ? " " : "", lo, hi, s);
	}
	*out = v;
	return 0;
}

/* A top-level number setting (usb = 1). */
static int setting_number(struct parser *p, int k, unsigned long lo, unsigned long hi,
			  unsigned long *out)
{
	const struct setting *st = &p->set[k];
	if (st->is_list || st->it[0].kind != V_NUM)
		return fail(p, st->line, key_names[k], "must be a number %lu..%lu", lo, hi);
	char tok[80];
	snprintf(tok, sizeof(tok), "%.*s", (int)(st->it[0].len < 79 ? st->it[0].len : 79), st->it[0].p);
	return number(p, st->line, key_names[k], NULL, tok, lo, hi, out);
}

/* The strings of a list setting (a lone string counts as a one-entry list). */
static int entry_string(struct parser *p, int k, unsigned i, char *what, size_t wlen,
			const char **str)
{
	const struct setting *st = &p->set[k];
	const struct item *it = &st->it[i];
	if (st->is_list)
		snprintf(what, wlen, "%s[%u]", key_names[k], i);
	else
		snprintf(what, wlen, "%s", key_names[k]);
	if (it->kind != V_STR)
		return fail(p, it->line, what, "expected a quoted string, got %.*s", (int)(it->len < 64 ? it->len : 64),
			    it->p);
	*str = decode(p, it);
	return 0;
}

/* ------------------------------------------------------------ device names */

/* Check a device name with devname.h's rules, and give the key under which
 * two entries are the same device: "" for emulated devices that may be
 * attached many times, the image for storage (one image, one device).
 * Returns NULL when valid, else the reason (in why). */
static const char *check_device(const char *name, char *canon, size_t clen, char *why, size_t wlen)
{
	struct pvusb_devname n;
	canon[0] = 0;
	if (pvusb_devname_parse(name, &n, why, wlen) < 0)
		return why;
	switch (n.kind) {
	case PVUSB_DEVNAME_EMUL:
		if (!strcmp(n.emul, "storage")) {
			size_t len = strlen(n.arg);
			if (len >= 3 && !strcmp(n.arg + len - 3, ",ro"))
				len -= 3;
			snprintf(canon, clen, "storage:%.*s", (int)len, n.arg);
		}
		break;
	case PVUSB_DEVNAME_BUSPATH:
		pvusb_devname_buspath(n.bus, n.ports, n.nports, canon, clen);
		break;
	case PVUSB_DEVNAME_BUSADDR:
		snprintf(canon, clen, "%u.%u", n.bus, n.addr);
		break;
	case PVUSB_DEVNAME_VIDPID:
		snprintf(canon, clen, "%04x:%04x%s%s", n.vendor, n.product, n.serial[0] ? ":" : "", n.serial);
		break;
	}
	return NULL;
}

/* ------------------------------------------------------------ spec strings */

/* "a=1, b=2": pieces split at commas, blanks trimmed; val is NULL for a
 * piece without '='. Returns the count, or -1 when there are too many. */
struct piece {
	char *key, *val;
};

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	char *e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = 0;
	return s;
}

static int split_pieces(char *buf, struct piece *pc)
{
	int n = 0;
	for (char *s = buf; s;) {
		char *comma = strchr(s, ',');
		if (comma)
			*comma = 0;
		char *t = trim(s);
		s = comma ? comma + 1 : NULL;
		if (!*t)
			continue; /* "a=1,,b=2" or a trailing comma */
		if (n >= MAX_PIECES)
			return -1;
		char *eq = strchr(t, '=');
		if (eq) {
			*eq = 0;
			pc[n].key = trim(t);
			pc[n].val = trim(eq + 1);
		} else {
			pc[n].key = t;
			pc[n].val = NULL;
		}
		n++;
	}
	return n;
}

/* A device name value, taking back the commas of following pieces without
 * '=' ("device=storage:/img,ro"). Advances *i past them. */
static int device_value(struct parser *p, unsigned line, const char *what, const char *key,
			struct piece *pc, int n, int *i, char *dev, size_t devlen)
{
	size_t len = (size_t)snprintf(dev, devlen, "%s", pc[*i].val);
	while (*i + 1 < n && !pc[*i + 1].val && len < devlen)
		len += (size_t)snprintf(dev + len, devlen - len, ",%s", pc[++*i].key);
	if (len >= devlen)
		return fail(p, line, what, "%s: device name longer than %zu bytes", key, devlen - 1);
	if (!*dev)
		return fail(p, line, what, "%s: empty device name", key);
	return 0;
}

/* ------------------------------------------------------------ the plan */

struct pending {               /* a usbdev before its port is chosen */
	long ctrl, port;       /* -1 when not written */
	char canon[300];
};

struct plan {
	struct pending pend[PVUSB_CFG_MAX_DEVS];
	int occ[PVUSB_CFG_MAX_CTRLS][MAX_PORTS + 1]; /* device index + 1, 0 = free */
};

static int ctrl_index(const struct pvusb_cfg *c, long devid)
{
	for (unsigned i = 0; i < c->nctrls; i++)
		if (c->ctrls[i].devid == devid)
			return (int)i;
	return -1;
}

static int lowest_free_devid(const struct pvusb_cfg *c)
{
	int id = 0;
	while (ctrl_index(c, id) >= 0)
		id++;
	return id;
}

static struct pvusb_cfg_ctrl *new_ctrl(struct parser *p, unsigned line, const char *what)
{
	struct pvusb_cfg *c = p->out;
	if (c->nctrls >= PVUSB_CFG_MAX_CTRLS) {
		fail(p, line, what, "more than %d controllers", PVUSB_CFG_MAX_CTRLS);
		return NULL;
	}
	struct pvusb_cfg_ctrl *h = &c->ctrls[c->nctrls++];
	*h = (struct pvusb_cfg_ctrl){.devid = -1, .usb_ver = 2, .ports = DEFAULT_PORTS, .line = line};
	snprintf(h->type, sizeof(h->type), "auto");
	snprintf(h->what, sizeof(h->what), "%s", what);
	return h;
}

static struct pvusb_cfg_dev *new_dev(struct parser *p, unsigned line, const char *what)
{
	struct pvusb_cfg *c = p->out;
	if (c->ndevs >= PVUSB_CFG_MAX_DEVS) {
		fail(p, line, what, "more than %d devices", PVUSB_CFG_MAX_DEVS);
		return NULL;
	}
	struct pvusb_cfg_dev *d = &c->devs[c->ndevs++];
	*d = (struct pvusb_cfg_dev){.ctrl = -1, .port = 0, .line = line};
	snprintf(d->what, sizeof(d->what), "%s", what);
	return d;
}

/* Check the device name of devs[i] and that no earlier entry names it. */
static int check_dev_name(struct parser *p, struct plan *pl, unsigned i)
{
	const struct pvusb_cfg_dev *d = &p->out->devs[i];
	char buf[320];
	const char *why = check_device(d->device, pl->pend[i].canon, sizeof(pl->pend[i].canon), buf,
				       sizeof(buf));
	if (why)
		return fail(p, d->line, d->what, "device '%.64s': %s", d->device, why);
	for (unsigned j = 0; j < i && pl->pend[i].canon[0]; j++)
		if (!strcmp(pl->pend[i].canon, pl->pend[j].canon))
			return fail(p, d->line, d->what, "%.64s is already assigned by %s (line %u)",
				    d->device, p->out->devs[j].what, p->out->devs[j].line);
	return 0;
}

/* Put devs[i] on port (1-based) of controller index ci. */
static int occupy(struct parser *p, struct plan *pl, unsigned i, int ci, int port)
{
	struct pvusb_cfg_dev *d = &p->out->devs[i];
	const struct pvusb_cfg_ctrl *h = &p->out->ctrls[ci];
	if (port > (int)h->ports)
		return fail(p, d->line, d->what, "port %d is beyond controller %d's %u ports", port,
			    h->devid, h->ports);
	int other = pl->occ[ci][port];
	if (other)
		return fail(p, d->line, d->what, "port %d of controller %d is already taken by %s (line %u)",
			    port, h->devid, p->out->devs[other - 1].what, p->out->devs[other - 1].line);
	pl->occ[ci][port] = (int)i + 1;
	d->ctrl = h->devid;
	d->port = port;
	return 0;
}

static int first_free(const struct plan *pl, const struct pvusb_cfg_ctrl *h, int ci)
{
	for (int port = 1; port <= (int)h->ports; port++)
		if (!pl->occ[ci][port])
			return port;
	return 0;
}

/* xl's rule, for the devices whose controller or port was not written:
 * explicit ports are placed first so that an automatic choice never takes
 * a port another entry names; then a named controller's first free port;
 * then the first free port of any controller in file order, else a new
 * default controller. */
static int place_devices(struct parser *p, struct plan *pl)
{
	struct pvusb_cfg *c = p->out;
	for (int pass = 0; pass < 3; pass++) {
		for (unsigned i = 0; i < c->ndevs; i++) {
			struct pending *pd = &pl->pend[i];
			struct pvusb_cfg_dev *d = &c->devs[i];
			int ci = pd->ctrl >= 0 ? ctrl_index(c, pd->ctrl) : -1, rc = 0;
			if (pass == 0 && pd->port > 0)
				rc = occupy(p, pl, i, ci, (int)pd->port);
			else if (pass == 1 && pd->ctrl >= 0 && pd->port < 0) {
				int port = first_free(pl, &c->ctrls[ci], ci);
				rc = port ? occupy(p, pl, i, ci, port)
					  : fail(p, d->line, d->what, "controller %ld has no free port (all %u taken)",
						 pd->ctrl, c->ctrls[ci].ports);
			} else if (pass == 2 && pd->ctrl < 0) {
				int port = 0;
				for (ci = 0; ci < (int)c->nctrls && !port; ci++)
					port = first_free(pl, &c->ctrls[ci], ci);
				if (port) {
					rc = occupy(p, pl, i, ci - 1, port);
				} else {
					struct pvusb_cfg_ctrl *h = new_ctrl(p, d->line, d->what);
					if (!h)
						return -EINVAL;
					h->devid = lowest_free_devid(c);
					h->implicit = true;
					rc = occupy(p, pl, i, (int)c->nctrls - 1, 1);
				}
			}
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

/* ------------------------------------------------------------ xl */

static int xl_ctrl_piece(struct parser *p, unsigned line, const char *what,
			 struct pvusb_cfg_ctrl *h, const struct piece *pc, unsigned *seen)
{
	static const char *const keys[] = {"type", "version", "ports", "devid"};
	unsigned k = 0;
	while (k < 4 && strcmp(pc->key, keys[k]))
		k++;
	if (!pc->val || k == 4)
		return fail(p, line, what, "unknown item '%.64s' (expected type=, version=, ports=, devid=)",
			    pc->key);
	if (*seen & (1u << k))
		return fail(p, line, what, "%s given twice", keys[k]);
	*seen |= 1u << k;
	unsigned long v;
	int rc = 0;
	if (k == 0) {
		if (!strcmp(pc->val, "qusb") || !strcmp(pc->val, "devicemodel"))
			return fail(p, line, what, "type=%s controllers are served by QEMU, not pvusbd "
						    "(use pv or auto)", pc->val);
		if (strcmp(pc->val, "pv") && strcmp(pc->val, "auto"))
			return fail(p, line, what, "type must be pv or auto, got '%.64s'", pc->val);
		snprintf(h->type, sizeof(h->type), "%s", pc->val);
	} else if (k == 1 && !(rc = number(p, line, what, "version", pc->val, 1, 2, &v))) {
		h->usb_ver = (unsigned)v;
	} else if (k == 2 && !(rc = number(p, line, what, "ports", pc->val, 1, MAX_PORTS, &v))) {
		h->ports = (unsigned)v;
	} else if (k == 3 && !(rc = number(p, line, what, "devid", pc->val, 0, PVUSB_CFG_MAX_DEVID, &v))) {
		h->devid = (int)v;
		h->devid_given = true;
	}
	return rc;
}

static int xl_controllers(struct parser *p)
{
	const struct setting *st = &p->set[K_USBCTRL];
	struct piece pc[MAX_PIECES];
	for (unsigned i = 0; st->set && i < st->n; i++) {
		char what[24];
		const char *s;
		unsigned line = st->it[i].line, seen = 0;
		int rc = entry_string(p, K_USBCTRL, i, what, sizeof(what), &s), n;
		if (rc < 0)
			return rc;
		if ((n = split_pieces(p->buf, pc)) < 0)
			return fail(p, line, what, "more than %d items", MAX_PIECES);
		struct pvusb_cfg_ctrl *h = new_ctrl(p, line, what);
		if (!h)
			return -EINVAL;
		for (int j = 0; j < n; j++)
			if ((rc = xl_ctrl_piece(p, line, what, h, &pc[j], &seen)) < 0)
				return rc;
		int other = h->devid_given ? ctrl_index(p->out, h->devid) : -1;
		if (other >= 0 && &p->out->ctrls[other] != h)
			return fail(p, line, what, "devid %d is already used by %s (line %u)", h->devid,
				    p->out->ctrls[other].what, p->out->ctrls[other].line);
	}
	/* ids for the others: the lowest free, in list order, as libxl does */
	for (unsigned i = 0; i < p->out->nctrls; i++)
		if (p->out->ctrls[i].devid < 0)
			p->out->ctrls[i].devid = lowest_free_devid(p->out);
	return 0;
}

/* One usbdev item; hostbus/hostaddr are collected into bus/addr. */
static int xl_dev_piece(struct parser *p, unsigned line, const char *what, struct piece *pc, int n,
			int *j, struct pending *pd, unsigned long *busaddr, unsigned *seen)
{
	static const char *const keys[] = {"type", "hostbus", "hostaddr", "controller", "port", "device"};
	struct pvusb_cfg_dev *d = &p->out->devs[p->out->ndevs - 1];
	unsigned k = 0;
	while (k < 6 && strcmp(pc[*j].key, keys[k]))
		k++;
	if (!pc[*j].val || k == 6)
		return fail(p, line, what, "unknown item '%.64s' (expected type=hostdev, hostbus=, hostaddr=, "
					    "controller=, port= or device=)", pc[*j].key);
	if (*seen & (1u << k))
		return fail(p, line, what, "%s given twice", keys[k]);
	*seen |= 1u << k;
	const char *v = pc[*j].val;
	unsigned long x;
	int rc = 0;
	switch (k) {
	case 0:
		if (strcmp(v, "hostdev"))
			return fail(p, line, what, "type must be hostdev, got '%.64s'", v);
		break;
	case 1: rc = number(p, line, what, "hostbus", v, 1, 255, &busaddr[0]); break;
	case 2: rc = number(p, line, what, "hostaddr", v, 1, 127, &busaddr[1]); break;
	case 3: rc = number(p, line, what, "controller", v, 0, PVUSB_CFG_MAX_DEVID, &x); pd->ctrl = (long)x; break;
	case 4: rc = number(p, line, what, "port", v, 1, MAX_PORTS, &x); pd->port = (long)x; break;
	case 5: rc = device_value(p, line, what, "device", pc, n, j, d->device, sizeof(d->device)); break;
	}
	return rc;
}

static int xl_device(struct parser *p, struct plan *pl, unsigned i)
{
	struct piece pc[MAX_PIECES];
	char what[24];
	const char *s;
	unsigned line = p->set[K_USBDEV].it[i].line, seen = 0;
	unsigned long busaddr[2] = {0, 0};
	int rc = entry_string(p, K_USBDEV, i, what, sizeof(what), &s), n;
	if (rc < 0)
		return rc;
	if ((n = split_pieces(p->buf, pc)) < 0)
		return fail(p, line, what, "more than %d items", MAX_PIECES);
	struct pvusb_cfg_dev *d = new_dev(p, line, what);
	if (!d)
		return -EINVAL;
	struct pending *pd = &pl->pend[p->out->ndevs - 1];
	pd->ctrl = pd->port = -1;
	for (int j = 0; j < n; j++)
		if ((rc = xl_dev_piece(p, line, what, pc, n, &j, pd, busaddr, &seen)) < 0)
			return rc;
	bool bus = seen & 2, addr = seen & 4, dev = seen & 32; /* bits: xl_dev_piece's keys[] */
	if (dev && (bus || addr))
		return fail(p, line, what, "give either device= or hostbus= and hostaddr=, not both");
	if (!dev && !(bus && addr))
		return fail(p, line, what, "needs hostbus= and hostaddr= (or device=)");
	if (!dev)
		snprintf(d->device, sizeof(d->device), "%lu.%lu", busaddr[0], busaddr[1]);
	if (pd->port > 0 && pd->ctrl < 0)
		return fail(p, line, what, "port= needs controller= too");
	if (pd->ctrl >= 0 && ctrl_index(p->out, pd->ctrl) < 0)
		return fail(p, line, what, "controller=%ld is not one of the controllers in usbctrl", pd->ctrl);
	d->ctrl_given = pd->ctrl >= 0;
	d->port_given = pd->port > 0;
	return check_dev_name(p, pl, p->out->ndevs - 1);
}

static int parse_xl(struct parser *p, struct plan *pl)
{
	int rc = xl_controllers(p);
	for (unsigned i = 0; rc == 0 && p->set[K_USBDEV].set && i < p->set[K_USBDEV].n; i++)
		rc = xl_device(p, pl, i);
	return rc < 0 ? rc : place_devices(p, pl);
}

/* ------------------------------------------------------------ xm */

/* "port_N": N in 1..16, decimal. */
static int xm_port_key(struct parser *p, unsigned line, const char *what, const char *key,
		       unsigned long *port)
{
	char name[80];
	snprintf(name, sizeof(name), "%.64s", key);
	if (strncmp(key, "port_", 5))
		return fail(p, line, what, "unknown item '%.64s' (expected usbver=, numports=, port_1= .. "
					    "port_16=)", key);
	return number(p, line, what, name, key + 5, 1, XM_MAX_PORTS, port);
}

static int xm_port(struct parser *p, struct plan *pl, unsigned line, const char *what,
		   struct piece *pc, int n, int *j, unsigned *seen_ports)
{
	unsigned long port;
	int rc = xm_port_key(p, line, what, pc[*j].key, &port);
	if (rc < 0)
		return rc;
	if (*seen_ports & (1u << port))
		return fail(p, line, what, "port_%lu given twice", port);
	*seen_ports |= 1u << port;
	if (!*pc[*j].val)
		return 0; /* "port_2=": an empty port, as xend wrote them */
	char dwhat[24];
	snprintf(dwhat, sizeof(dwhat), "%.12s.port_%lu", what, port);
	struct pvusb_cfg_dev *d = new_dev(p, line, dwhat);
	if (!d)
		return -EINVAL;
	struct pending *pd = &pl->pend[p->out->ndevs - 1];
	pd->ctrl = p->out->ctrls[p->out->nctrls - 1].devid;
	pd->port = (long)port;
	d->ctrl_given = d->port_given = true;
	return device_value(p, line, dwhat, pc[*j].key, pc, n, j, d->device, sizeof(d->device));
}

static int xm_controller(struct parser *p, struct plan *pl, unsigned i)
{
	struct piece pc[MAX_PIECES];
	char what[24];
	const char *s;
	unsigned line = p->set[K_VUSB].it[i].line, seen = 0, seen_ports = 0, first_dev = p->out->ndevs;
	int rc = entry_string(p, K_VUSB, i, what, sizeof(what), &s), n;
	if (rc < 0)
		return rc;
	if ((n = split_pieces(p->buf, pc)) < 0)
		return fail(p, line, what, "more than %d items", MAX_PIECES);
	struct pvusb_cfg_ctrl *h = new_ctrl(p, line, what);
	if (!h)
		return -EINVAL;
	h->devid = (int)i;
	unsigned long v;
	for (int j = 0; j < n && rc == 0; j++) {
		bool ver = !strcmp(pc[j].key, "usbver"), num = !strcmp(pc[j].key, "numports");
		unsigned bit = ver ? 1 : 2;
		if ((ver || num) && !pc[j].val)
			return fail(p, line, what, "%s needs a value", pc[j].key);
		if ((ver || num) && (seen & bit))
			return fail(p, line, what, "%s given twice", pc[j].key);
		seen |= (ver || num) ? bit : 0;
		if (ver && !(rc = number(p, line, what, "usbver", pc[j].val, 1, 2, &v)))
			h->usb_ver = (unsigned)v;
		else if (num && !(rc = number(p, line, what, "numports", pc[j].val, 1, XM_MAX_PORTS, &v)))
			h->ports = (unsigned)v;
		else if (!ver && !num && !pc[j].val)
			return fail(p, line, what, "expected KEY=VALUE, got '%.64s'", pc[j].key);
		else if (!ver && !num)
			rc = xm_port(p, pl, line, what, pc, n, &j, &seen_ports);
	}
	for (unsigned d = first_dev; rc == 0 && d < p->out->ndevs; d++)
		if ((rc = check_dev_name(p, pl, d)) == 0 && pl->pend[d].port > (long)h->ports)
			rc = fail(p, line, p->out->devs[d].what, "port_%ld is beyond numports=%u",
				  pl->pend[d].port, h->ports);
	return rc;
}

static int parse_xm(struct parser *p, struct plan *pl)
{
	int rc = 0;
	for (unsigned i = 0; rc == 0 && i < p->set[K_VUSB].n; i++)
		rc = xm_controller(p, pl, i);
	return rc < 0 ? rc : place_devices(p, pl);
}

/* ------------------------------------------------------------ emulated */

/* One controller, version usbversion (default 2), with the default 8 ports
 * or as many as the devices need, and the devices on ports 1, 2, ... */
static int parse_emul(struct parser *p, struct plan *pl)
{
	const struct setting *dv = &p->set[K_USBDEVICE];
	unsigned long ver = 2;
	int rc;
	if (p->set[K_USBVERSION].set && (rc = setting_number(p, K_USBVERSION, 1, 2, &ver)) < 0)
		return rc;
	unsigned ndev = dv->set ? dv->n : 0;
	if (ndev > MAX_PORTS)
		return fail(p, dv->line, "usbdevice", "%u devices do not fit one controller (at most %d)",
			    ndev, MAX_PORTS);
	unsigned line = p->set[K_USB].set ? p->set[K_USB].line : dv->line;
	struct pvusb_cfg_ctrl *h = new_ctrl(p, line, p->set[K_USB].set ? "usb" : "usbdevice");
	h->devid = 0;
	h->usb_ver = (unsigned)ver;
	h->ports = ndev > DEFAULT_PORTS ? ndev : DEFAULT_PORTS;
	for (unsigned i = 0; i < ndev; i++) {
		char what[24];
		const char *s;
		if ((rc = entry_string(p, K_USBDEVICE, i, what, sizeof(what), &s)) < 0)
			return rc;
		struct pvusb_cfg_dev *d = new_dev(p, dv->it[i].line, what);
		if (strlen(s) >= sizeof(d->device))
			return fail(p, d->line, what, "device name longer than %zu bytes", sizeof(d->device) - 1);
		snprintf(d->device, sizeof(d->device), "%s", s);
		d->ctrl = 0;
		d->port = (int)i + 1;
		pl->pend[i].ctrl = pl->pend[i].port = -1;
		if ((rc = check_dev_name(p, pl, i)) < 0)
			return rc;
	}
	return 0;
}

/* ------------------------------------------------------------ top level */

static int parse_name(struct parser *p)
{
	const struct setting *st = &p->set[K_NAME];
	if (!st->set)
		return 0;
	if (st->is_list || st->it[0].kind != V_STR)
		return fail(p, st->line, "name", "must be a quoted string");
	const char *s = decode(p, &st->it[0]);
	size_t n = strlen(s);
	bool ok = n >= 1 && n <= 63;
	for (const char *c = s; ok && *c; c++)
		ok = is_alpha(*c) || is_digit(*c) || *c == '-' || *c == '.';
	if (!ok)
		return fail(p, st->line, "name", "must be 1-63 characters of A-Z a-z 0-9 . _ -, got '%.64s'", s);
	memcpy(p->out->name, s, n + 1);
	return 0;
}

/* Which syntax the file uses; two at once is an error, because their
 * controllers would be numbered against each other. */
static int pick_syntax(struct parser *p, bool *emul)
{
	unsigned long usb = 0;
	int rc;
	if (p->set[K_USB].set && (rc = setting_number(p, K_USB, 0, 1, &usb)) < 0)
		return rc;
	if (p->set[K_USB].set && !usb && p->set[K_USBDEVICE].set)
		return fail(p, p->set[K_USBDEVICE].line, "usbdevice", "lists devices but usb = 0 (line %u)",
			    p->set[K_USB].line);
	*emul = usb || p->set[K_USBDEVICE].set;
	int ekey = p->set[K_USBDEVICE].set ? K_USBDEVICE : K_USB;
	int xl = p->set[K_USBCTRL].set ? K_USBCTRL : p->set[K_USBDEV].set ? K_USBDEV : -1;
	int keys[3] = {xl, p->set[K_VUSB].set ? K_VUSB : -1, *emul ? ekey : -1};
	for (int a = 0; a < 3; a++)
		for (int b = a + 1; b < 3; b++) {
			if (keys[a] < 0 || keys[b] < 0)
				continue;
			const struct setting *sa = &p->set[keys[a]], *sb = &p->set[keys[b]];
			bool a_first = sa->line <= sb->line;
			int later = a_first ? keys[b] : keys[a], earlier = a_first ? keys[a] : keys[b];
			return fail(p, p->set[later].line, key_names[later],
				    "cannot be mixed with %s (line %u): use one syntax per file",
				    key_names[earlier], p->set[earlier].line);
		}
	p->out->syntax = xl >= 0 ? PVUSB_CFG_XL : keys[1] >= 0 ? PVUSB_CFG_XM
				 : *emul ? PVUSB_CFG_EMUL : PVUSB_CFG_NONE;
	return 0;
}

int pvusb_cfg_parse(const char *path, const char *text, struct pvusb_cfg *out, char *err,
		    size_t errlen)
{
	struct parser p = {.path = path ? path : "-", .s = text, .line = 1, .err = err,
			   .errlen = errlen, .out = out}; /* ~15 KiB */
	struct plan pl;                                  /* ~22 KiB */
	memset(&pl, 0, sizeof(pl));
	memset(out, 0, sizeof(*out));
	if (errlen)
		err[0] = 0;
	bool emul = false;
	int rc = check_lines(&p, text);
	if (rc == 0)
		rc = scan_file(&p);
	if (rc == 0)
		rc = parse_name(&p);
	if (rc == 0)
		rc = pick_syntax(&p, &emul);
	if (rc == 0 && out->syntax == PVUSB_CFG_XL)
		rc = parse_xl(&p, &pl);
	else if (rc == 0 && out->syntax == PVUSB_CFG_XM)
		rc = parse_xm(&p, &pl);
	else if (rc == 0 && out->syntax == PVUSB_CFG_EMUL)
		rc = parse_emul(&p, &pl);
	return rc;
}

/* The whole file into text (PVUSB_CFG_MAX_FILE + 1 bytes), NUL-terminated. */
static int read_all(int fd, const char *path, char *text, char *err, size_t errlen)
{
	size_t len = 0;
	ssize_t n;
	while (len <= PVUSB_CFG_MAX_FILE &&
	       (n = read(fd, text + len, PVUSB_CFG_MAX_FILE + 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			snprintf(err, errlen, "%s: cannot read: %s", path, strerror(e));
			return -e;
		}
		len += (size_t)n;
	}
	if (len > PVUSB_CFG_MAX_FILE) {
		snprintf(err, errlen, "%s: larger than %d bytes; not a domain configuration file", path,
			 PVUSB_CFG_MAX_FILE);
		return -EFBIG;
	}
	const char *nul = memchr(text, 0, len);
	if (nul) {
		unsigned line = 1;
		for (const char *c = text; c < nul; c++)
			line += *c == '\n';
		snprintf(err, errlen, "%s:%u: a NUL byte: not a text file", path, line);
		return -EINVAL;
	}
	text[len] = 0;
	return 0;
}

int pvusb_cfg_load(const char *path, struct pvusb_cfg *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(e));
		return -e;
	}
	char *text = malloc(PVUSB_CFG_MAX_FILE + 1);
	if (!text) {
		close(fd);
		snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	int rc = read_all(fd, path, text, err, errlen);
	close(fd);
	if (rc == 0)
		rc = pvusb_cfg_parse(path, text, out, err, errlen);
	free(text);
	return rc;
}
