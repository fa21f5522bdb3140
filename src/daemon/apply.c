/* SPDX-License-Identifier: MIT */
/* Domain config files (pvusb.cfg(5)): applied at start and by 'pvusb apply'. */
#include "daemon.h"

void pvusbd_config_dir_apply(struct pvusbd *d)
{
	(void)d; /* filled in when the config parser lands */
}
