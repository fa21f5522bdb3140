/*
 * usbprobe - a small libusb program for the gadget VM's smoke test.
 *
 *   usbprobe list
 *   usbprobe read    VID:PID BYTES [CHUNK]   bulk IN from a SourceSink gadget, checks the
 *                                            pattern=1 data (byte j of each max-size packet
 *                                            is j % 63, as f_sourcesink makes and checks it)
 *   usbprobe write   VID:PID BYTES [CHUNK]   bulk OUT of the same pattern (the sink checks it
 *                                            and stalls on a mismatch)
 *   usbprobe hotplug VID:PID EVENTS SECONDS  print "armed", then wait for EVENTS hot-plug
 *                                            events (left/arrived) for that device
 *
 * CHUNK (default 4096) should be a multiple of the endpoint's max packet size, so that
 * every transfer starts on a packet boundary and the pattern check stays in step.
 * Exit status 0 on success, 1 on any failure (with a message on stderr).
 *
 * Build: cc -O2 -Wall -Wextra -o usbprobe usbprobe.c $(pkg-config --cflags --libs libusb-1.0)
 */
#include <libusb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int fail(const char *what, int rc)
{
    fprintf(stderr, "usbprobe: %s: %s\n", what, rc < 0 ? libusb_strerror(rc) : "failed");
    return 1;
}

static int parse_id(const char *s, unsigned *vid, unsigned *pid)
{
    if (sscanf(s, "%x:%x", vid, pid) != 2) {
        fprintf(stderr, "usbprobe: bad VID:PID '%s'\n", s);
        return -1;
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmd_list(libusb_context *ctx)
{
    libusb_device **list;
    ssize_t n = libusb_get_device_list(ctx, &list);
    if (n < 0)
        return fail("get_device_list", (int)n);
    for (ssize_t i = 0; i < n; i++) {
        struct libusb_device_descriptor d;
        if (libusb_get_device_descriptor(list[i], &d) == 0)
            printf("bus %03u dev %03u %04x:%04x speed %d\n", libusb_get_bus_number(list[i]),
                   libusb_get_device_address(list[i]), d.idVendor, d.idProduct,
                   libusb_get_device_speed(list[i]));
    }
    libusb_free_device_list(list, 1);
    return 0;
}

/* Finds interface 0's bulk endpoint of the wanted direction and its max packet size. */
static int find_bulk_ep(libusb_device_handle *h, int dir_in, unsigned char *ep, int *mps)
{
    struct libusb_config_descriptor *cfg;
    int rc = libusb_get_active_config_descriptor(libusb_get_device(h), &cfg);
    if (rc < 0)
        return rc;
    rc = LIBUSB_ERROR_NOT_FOUND;
    const struct libusb_interface_descriptor *alt = &cfg->interface[0].altsetting[0];
    for (int i = 0; i < alt->bNumEndpoints; i++) {
        const struct libusb_endpoint_descriptor *e = &alt->endpoint[i];
        if ((e->bmAttributes & 3) == LIBUSB_TRANSFER_TYPE_BULK &&
            !!(e->bEndpointAddress & LIBUSB_ENDPOINT_IN) == dir_in) {
            *ep = e->bEndpointAddress;
            *mps = e->wMaxPacketSize & 0x7ff;
            rc = 0;
            break;
        }
    }
    libusb_free_config_descriptor(cfg);
    return rc;
}

static int cmd_transfer(libusb_context *ctx, int dir_in, int argc, char **argv)
{
    unsigned vid, pid;
    if (argc < 4 || parse_id(argv[2], &vid, &pid) < 0)
        return fail("usage: read|write VID:PID BYTES [CHUNK]", 0);
    long long total = atoll(argv[3]);
    int chunk = argc > 4 ? atoi(argv[4]) : 4096;
    if (total <= 0 || chunk <= 0)
        return fail("BYTES and CHUNK must be positive", 0);

    libusb_device_handle *h = libusb_open_device_with_vid_pid(ctx, (uint16_t)vid, (uint16_t)pid);
    if (!h)
        return fail("open (device not found or no access)", 0);
    libusb_set_auto_detach_kernel_driver(h, 1);
    int rc = libusb_claim_interface(h, 0);
    unsigned char ep = 0;
    int mps = 512;
    if (rc == 0)
        rc = find_bulk_ep(h, dir_in, &ep, &mps);
    unsigned char *buf = malloc((size_t)chunk);
    if (rc < 0 || !buf) {
        libusb_close(h);
        free(buf);
        return fail("claim interface 0 / find bulk endpoint", rc);
    }
    /* f_sourcesink's pattern 1 restarts with every max-size packet. */
    for (int i = 0; i < chunk; i++)
        buf[i] = (unsigned char)(i % mps % 63);

    double t0 = now_s();
    long long done = 0;
    int status = 0;
    while (done < total) {
        int len = 0;
        rc = libusb_bulk_transfer(h, ep, buf, chunk, &len, 5000);
        if (rc < 0) {
            status = fail(dir_in ? "bulk IN" : "bulk OUT", rc);
            break;
        }
        if (dir_in) {
            for (int i = 0; i < len; i++) {
                if (buf[i] != (unsigned char)(i % mps % 63)) {
                    fprintf(stderr, "usbprobe: pattern mismatch at byte %lld: %u != %d\n",
                            done + i, buf[i], i % mps % 63);
                    status = 1;
                    break;
                }
            }
            if (status)
                break;
        }
        done += len;
    }
    double dt = now_s() - t0;
    if (!status)
        printf("%s %lld bytes in %.3f s (%.1f MB/s)\n", dir_in ? "read" : "wrote", done, dt,
               dt > 0 ? (double)done / dt / 1e6 : 0.0);
    libusb_release_interface(h, 0);
    libusb_close(h);
    free(buf);
    return status;
}

struct hp_state {
    int events;
};

static int LIBUSB_CALL hp_cb(libusb_context *ctx, libusb_device *dev, libusb_hotplug_event ev,
                             void *user)
{
    (void)ctx;
    struct hp_state *st = user;
    printf("%s bus %03u dev %03u\n", ev == LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED ? "arrived" : "left",
           libusb_get_bus_number(dev), libusb_get_device_address(dev));
    fflush(stdout);
    st->events++;
    return 0;
}

static int cmd_hotplug(libusb_context *ctx, int argc, char **argv)
{
    unsigned vid, pid;
    if (argc < 5 || parse_id(argv[2], &vid, &pid) < 0)
        return fail("usage: hotplug VID:PID EVENTS SECONDS", 0);
    int want = atoi(argv[3]);
    double deadline = now_s() + atof(argv[4]);
    if (!libusb_has_capability(LIBUSB_CAP_HAS_HOTPLUG))
        return fail("this libusb has no hot-plug support", 0);
    struct hp_state st = {0};
    libusb_hotplug_callback_handle cb;
    int rc = libusb_hotplug_register_callback(
        ctx, LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED | LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT, 0, (int)vid,
        (int)pid, LIBUSB_HOTPLUG_MATCH_ANY, hp_cb, &st, &cb);
    if (rc < 0)
        return fail("hotplug_register_callback", rc);
    printf("armed\n");
    fflush(stdout);
    while (st.events < want && now_s() < deadline) {
        struct timeval tv = {0, 100000};
        rc = libusb_handle_events_timeout_completed(ctx, &tv, NULL);
        if (rc < 0 && rc != LIBUSB_ERROR_INTERRUPTED)
            return fail("handle_events", rc);
    }
    libusb_hotplug_deregister_callback(ctx, cb);
    if (st.events < want) {
        fprintf(stderr, "usbprobe: got %d of %d hot-plug events\n", st.events, want);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: usbprobe list | read|write VID:PID BYTES [CHUNK] | "
                        "hotplug VID:PID EVENTS SECONDS\n");
        return 1;
    }
    libusb_context *ctx;
    int rc = libusb_init(&ctx);
    if (rc < 0)
        return fail("libusb_init", rc);
    int status;
    if (!strcmp(argv[1], "list"))
        status = cmd_list(ctx);
    else if (!strcmp(argv[1], "read"))
        status = cmd_transfer(ctx, 1, argc, argv);
    else if (!strcmp(argv[1], "write"))
        status = cmd_transfer(ctx, 0, argc, argv);
    else if (!strcmp(argv[1], "hotplug"))
        status = cmd_hotplug(ctx, argc, argv);
    else
        status = fail("unknown command", 0);
    libusb_exit(ctx);
    return status;
}
