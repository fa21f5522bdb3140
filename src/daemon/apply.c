/* SPDX-License-Identifier: MIT */
/*
 * Domain config files (pvusb.cfg(5)), applied by 'pvusb apply' and, at
 * start, from the config directory. All or nothing: a failure undoes every
 * controller the file created (which also closes the devices put on them).
 * A domain that already has controllers is left alone: at start the state
 * file is the truth, and applying twice would double the setup.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "pvusb/config.h"
#include "util/log.h"

static bool frontend_has_hcs(struct pvusbd *d, const char *fe)
{
	for (int i = 0; i < PVUSBD_MAX_HCS; i++)
		if (d->hcs[i].hc && !strcmp(d->hcs[i].frontend, fe))
			return true;
	return false;
}

static void undo(struct pvusbd *d, struct pvusbd_hc **made, unsigned n)
{
	while (n--)
		pvusbd_hc_free(d, made[n]);
}

int pvusbd_apply(struct pvusbd *d, const char *path, const struct pvusb_cfg *cfg, const char *fe,
		 json_object *done, char *err, size_t errlen)
{
	struct pvusbd_hc *made[PVUSB_CFG_MAX_CTRLS];
	unsigned nmade = 0;
	char why[320];
	if (frontend_has_hcs(d, fe)) {
		snprintf(err, errlen, "%s already has controllers; remove them with usbctrl-detach first", fe);
		return -EEXIST;
	}
	for (unsigned i = 0; i < cfg->nctrls; i++) {
		const struct pvusb_cfg_ctrl *c = &cfg->ctrls[i];
		struct pvusbd_hc *h = pvusbd_hc_new(d, fe, c->devid, c->usb_ver, c->ports, why, sizeof(why));
		if (!h) {
			snprintf(err, errlen, "%s:%u: %s: %s", path, c->line, c->what, why);
			undo(d, made, nmade);
			return -ENOSPC;
		}
		made[nmade++] = h;
		snprintf(why, sizeof(why), "%s: controller %d: USB %s, %u ports", fe, c->devid,
			 c->usb_ver == 1 ? "1.1" : "2.0", c->ports);
		json_object_array_add(done, json_object_new_string(why));
	}
	for (unsigned i = 0; i < cfg->ndevs; i++) {
		const struct pvusb_cfg_dev *v = &cfg->devs[i];
		struct pvusbd_hc *h;
		unsigned port;
		int rc = pvusbd_assign(d, fe, v->ctrl, (unsigned)v->port, v->device, &h, &port, why,
				       sizeof(why));
		if (rc < 0) {
			snprintf(err, errlen, "%s:%u: %s: %s", path, v->line, v->what, why);
			undo(d, made, nmade);
			return rc;
		}
		snprintf(why, sizeof(why), "%s: controller %u port %u: %s", fe, h->devid, port, v->device);
		json_object_array_add(done, json_object_new_string(why));
	}
	return 0;
}

static void apply_file(struct pvusbd *d, const char *path)
{
	struct pvusb_cfg *cfg = malloc(sizeof(*cfg));
	char err[512];
	if (!cfg)
		return;
	int rc = pvusb_cfg_load(path, cfg, err, sizeof(err));
	if (rc == 0 && !cfg->name[0]) {
		log_err("config %s not applied: it has no name = \"...\", so its domain is unknown", path);
		free(cfg);
		return;
	}
	if (rc == 0 && cfg->syntax != PVUSB_CFG_NONE && !frontend_has_hcs(d, cfg->name)) {
		json_object *done = json_object_new_array();
		rc = pvusbd_apply(d, path, cfg, cfg->name, done, err, sizeof(err));
		if (rc == 0)
			log_info("applied %s: %zu steps for %s", path, json_object_array_length(done), cfg->name);
		json_object_put(done);
	}
	if (rc < 0)
		log_err("config %s not applied: %s", path, err);
	free(cfg);
}

static int cfg_name_filter(const struct dirent *e)
{
	size_t n = strlen(e->d_name);
	return e->d_name[0] != '.' && n > 4 && !strcmp(e->d_name + n - 4, ".cfg");
}

void pvusbd_config_dir_apply(struct pvusbd *d)
{
	if (!d->config_dir)
		return;
	struct dirent **list;
	int n = scandir(d->config_dir, &list, cfg_name_filter, alphasort);
	if (n < 0) {
		if (errno != ENOENT)
			log_warn("cannot read config directory %s: %s", d->config_dir, strerror(errno));
		return;
	}
	bool changed = false;
	for (int i = 0; i < n; i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", d->config_dir, list[i]->d_name);
		apply_file(d, path);
		changed = true;
		free(list[i]);
	}
	free(list);
	if (changed)
		pvusbd_state_save(d);
}
