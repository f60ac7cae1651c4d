/*
 * A stand-in for libnvidia-ml.so.1, for testing the harness through the real nvidia-ml-py
 * bindings on machines without an NVIDIA driver.
 *
 * It implements only the entry points pynvml reaches when harness/measure/nvml.py and
 * harness/measure/power.py run, with the argument types and struct layouts pynvml.py uses
 * (nvmlPciInfo_t for nvmlDeviceGetPciInfo_v3, c_nvmlFieldValue_t for nvmlDeviceGetFieldValues).
 * It is built with the SONAME libnvidia-ml.so.1, so once a process has loaded it by path,
 * pynvml's CDLL("libnvidia-ml.so.1") resolves to it (the dynamic loader matches the SONAME of
 * already loaded objects).
 *
 * What it serves comes from a key=value file named by NVML_STUB_CONFIG, read at every first
 * nvmlInit (after a full nvmlShutdown it is read again):
 *
 *   clock=real|manual          real: time since nvmlInit (CLOCK_MONOTONIC, the clock behind
 *                              Python's time.perf_counter), or since the CLOCK_MONOTONIC time
 *                              in ns of the environment variable NVML_STUB_ORIGIN_NS, so that
 *                              processes sharing it (the power sampler's child) see one
 *                              timeline and one set of field timestamps;
 *                              manual: set by nvml_stub_set_time_us
 *   devices=N                  number of GPUs NVML sees (at most 8)
 *   energy_update_us=100000    the energy counter and the averaged power move in steps of this
 *   power_update_us=20000      the instant power field (and its timestamp) moves in steps of this
 *   dev<i>.uuid=GPU-...  dev<i>.name=...  dev<i>.pci=00000000:17:00.0  dev<i>.mig=0|1
 *   dev<i>.power=T:V,...       GPU power in mW as a step function of time (seconds since init)
 *   dev<i>.energy0_mj=N        energy counter at time 0, in mJ
 *   dev<i>.c2c=0|1             a Grace Hopper style module (nvmlDeviceGetC2cModeInfoV): its
 *                              total-energy counter counts the module, GPU + dev<i>.cpu_power
 *   dev<i>.cpu_power=T:V,...   the rest of a C2C module (CPU, memory), mW
 *   energy_field=0|1           NVML_FI_DEV_ENERGY (191) supported: scope 0 (GPU) is the GPU's
 *                              energy, scope 1 (module) the module's (C2C devices only)
 *   dev<i>.sm_clock, .mem_clock (MHz), .temp (C), .limit_mw (mW), .reasons (bit mask):
 *                              each a constant or a T:V,... step function
 *   ret.<entry>=CODE           make an entry point return an NVML error code: init, count,
 *                              field_call, field_instant (the per-field return), power_usage,
 *                              energy, clock, temperature, limit, reasons, mig, uuid, pci, c2c
 *   lost_after_us=T            from time T on, every device call returns NVML_ERROR_GPU_IS_LOST
 *   cuda_driver_version=12080  what nvmlSystemGetCudaDriverVersion(_v2) answers (1000*major+10*minor)
 *   dev<i>.affinity=0-3,8      the CPUs nearest the GPU (nvmlDeviceGetCpuAffinity); default: all
 *   dev<i>.procs=PID:BYTES[:T0[:T1]],...
 *                              processes holding a CUDA context on the GPU (compute list), each
 *                              from T0 to T1 seconds (default: always); PID "self" is the pid of
 *                              the process asking, as a driver lists the caller's own context
 *   dev<i>.max_sm_clock=MHz    nvmlDeviceGetMaxClockInfo(SM)
 *   clock_sample_us=20000      period of the driver's SM clock samples (nvmlDeviceGetSamples)
 *
 * The clock-event (throttle) time counters (fields 74 sw power cap, 269 sw thermal, 270 hw
 * thermal, 271 hw power brake, in ns since init) are the exact time the dev<i>.reasons step
 * function had that reason's bit set, so a test computes them by hand.
 *
 * Energy is the exact integral of the power step function, in nanojoules, so a test can
 * compute the expected counter by hand: 250000 mW for 1.2 s is 300000 mJ.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

typedef int nvmlReturn_t;
#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_NOT_FOUND 6
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_GPU_IS_LOST 15

#define NVML_FI_DEV_POWER_AVERAGE 185
#define NVML_FI_DEV_POWER_INSTANT 186
#define NVML_FI_DEV_ENERGY 191
#define NVML_POWER_SCOPE_GPU 0
#define NVML_POWER_SCOPE_MODULE 1
#define NVML_VALUE_TYPE_UNSIGNED_INT 1
#define NVML_VALUE_TYPE_UNSIGNED_LONG_LONG 3
#define NVML_CLOCK_SM 1
#define NVML_CLOCK_MEM 2

#define NVML_ERROR_FUNCTION_NOT_FOUND 13
#define NVML_FI_DEV_PERF_POLICY_POWER 74
#define NVML_FI_SW_THERM 269
#define NVML_FI_HW_THERM 270
#define NVML_FI_HW_POWER_BRAKE 271
#define REASON_SW_POWER_CAP 0x4ULL
#define REASON_SW_THERMAL 0x20ULL
#define REASON_HW_THERMAL 0x40ULL
#define REASON_HW_POWER_BRAKE 0x80ULL
#define NVML_PROCESSOR_CLK_SAMPLES 5

#define MAX_DEVICES 8
#define MAX_POINTS 32
#define MAX_PROCS 16
#define MAX_CPUS 1024

typedef struct {
    int n;
    int64_t t_us[MAX_POINTS];
    int64_t v[MAX_POINTS];
} timeline_t;

typedef struct {
    char uuid[96];
    char name[96];
    char pci[32];
    unsigned domain, bus, device;
    int mig;
    int c2c;
    timeline_t power, cpu_power, sm_clock, mem_clock, temp, limit, reasons;
    int64_t energy0_mj;
    int64_t max_sm_clock;
    unsigned long long affinity[MAX_CPUS / 64];
    int nprocs;
    struct {
        unsigned pid;
        int self;
        unsigned long long bytes;
        int64_t t0_us, t1_us;
    } procs[MAX_PROCS];
} device_t;

/* pynvml's c_nvmlProcessInfo_v2_t (also _v3_t). */
typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlProcessInfo_t;

/* Layouts as in pynvml.py: nvmlPciInfo_t (v3) and c_nvmlFieldValue_t. */
typedef struct {
    char busIdLegacy[16];
    unsigned int domain;
    unsigned int bus;
    unsigned int device;
    unsigned int pciDeviceId;
    unsigned int pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;

typedef union {
    double dVal;
    unsigned int uiVal;
    unsigned long ulVal;
    unsigned long long ullVal;
    long long sllVal;
    int siVal;
    unsigned short usVal;
} nvmlValue_t;

typedef struct {
    unsigned int fieldId;
    unsigned int scopeId;
    long long timestamp;
    long long latencyUsec;
    unsigned int valueType;
    nvmlReturn_t nvmlReturn;
    nvmlValue_t value;
} nvmlFieldValue_t;

static int g_refcount = 0;
static int g_manual_clock = 0;
static int64_t g_manual_us = 0;
static int64_t g_init_ns = 0;
static int64_t g_init_epoch_us = 0;
static int64_t g_energy_update_us = 100000;
static int64_t g_power_update_us = 20000;
static int64_t g_lost_after_us = -1;
static int g_energy_field = 0;
static int g_count = 0;
static int64_t g_cuda_driver_version = 12080;
static int64_t g_clock_sample_us = 20000;
static device_t g_dev[MAX_DEVICES];

enum { R_INIT, R_COUNT, R_FIELD_CALL, R_FIELD_INSTANT, R_POWER_USAGE, R_ENERGY, R_CLOCK,
       R_TEMPERATURE, R_LIMIT, R_REASONS, R_MIG, R_UUID, R_PCI, R_C2C, R_PROCS, R_AFFINITY,
       R_VIOLATION, R_SAMPLES, R_CUDA_VERSION, R_N };
static const char *g_ret_names[R_N] = {"init", "count", "field_call", "field_instant",
                                       "power_usage", "energy", "clock", "temperature",
                                       "limit", "reasons", "mig", "uuid", "pci", "c2c",
                                       "procs", "affinity", "violation", "samples",
                                       "cuda_version"};
static int g_ret[R_N];

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t now_us(void) {
    if (g_manual_clock) return g_manual_us;
    return (mono_ns() - g_init_ns) / 1000;
}

/* Exported for tests: the stub's clock, in microseconds since nvmlInit. */
void nvml_stub_set_time_us(long long t_us) { g_manual_us = t_us; }
long long nvml_stub_time_us(void) { return now_us(); }

static void parse_timeline(timeline_t *tl, const char *text) {
    tl->n = 0;
    if (strchr(text, ':') == NULL) { /* a constant */
        tl->t_us[0] = 0;
        tl->v[0] = strtoll(text, NULL, 0);
        tl->n = 1;
        return;
    }
    const char *p = text;
    while (*p && tl->n < MAX_POINTS) {
        char *end;
        double t_s = strtod(p, &end);
        if (*end != ':') break;
        int64_t v = strtoll(end + 1, &end, 0);
        tl->t_us[tl->n] = (int64_t)(t_s * 1e6 + 0.5);
        tl->v[tl->n] = v;
        tl->n++;
        if (*end != ',') break;
        p = end + 1;
    }
}

static int64_t tl_at(const timeline_t *tl, int64_t t_us) {
    int64_t v = 0;
    for (int i = 0; i < tl->n; i++) {
        if (tl->t_us[i] <= t_us) v = tl->v[i];
    }
    return v;
}

/* Integral of the power step function from 0 to t_us, in nJ (1 mW for 1 us is 1 nJ). */
static int64_t energy_nj(const timeline_t *tl, int64_t t_us) {
    int64_t total = 0;
    for (int i = 0; i < tl->n; i++) {
        int64_t a = tl->t_us[i];
        int64_t b = (i + 1 < tl->n) ? tl->t_us[i + 1] : t_us;
        if (a < 0) a = 0;
        if (b > t_us) b = t_us;
        if (b > a) total += tl->v[i] * (b - a); /* mW * us = nJ */
    }
    return total;
}

/* Time in ns during which the reasons step function had any bit of ``bits`` set, 0..t_us. */
static int64_t reason_ns(const timeline_t *tl, unsigned long long bits, int64_t t_us) {
    int64_t total = 0;
    for (int i = 0; i < tl->n; i++) {
        int64_t a = tl->t_us[i];
        int64_t b = (i + 1 < tl->n) ? tl->t_us[i + 1] : t_us;
        if (a < 0) a = 0;
        if (b > t_us) b = t_us;
        if (b > a && ((unsigned long long)tl->v[i] & bits)) total += (b - a) * 1000;
    }
    return total;
}

static void parse_affinity(device_t *d, const char *text) {
    memset(d->affinity, 0, sizeof d->affinity);
    const char *p = text;
    while (*p) {
        char *end;
        long a = strtol(p, &end, 10), b = a;
        if (end == p) break;
        if (*end == '-') b = strtol(end + 1, &end, 10);
        for (long c = a; c <= b && c < MAX_CPUS; c++)
            if (c >= 0) d->affinity[c / 64] |= 1ULL << (c % 64);
        if (*end != ',') break;
        p = end + 1;
    }
}

static void parse_procs(device_t *d, const char *text) {
    d->nprocs = 0;
    const char *p = text;
    while (*p && d->nprocs < MAX_PROCS) {
        char *end;
        int self = strncmp(p, "self", 4) == 0;
        long pid = self ? 0 : strtol(p, &end, 10);
        if (self) end = (char *)p + 4;
        if (*end != ':') break;
        unsigned long long bytes = strtoull(end + 1, &end, 10);
        double t0 = 0, t1 = -1;
        if (*end == ':') t0 = strtod(end + 1, &end);
        if (*end == ':') t1 = strtod(end + 1, &end);
        int k = d->nprocs++;
        d->procs[k].pid = (unsigned)pid;
        d->procs[k].self = self;
        d->procs[k].bytes = bytes;
        d->procs[k].t0_us = (int64_t)(t0 * 1e6 + 0.5);
        d->procs[k].t1_us = t1 < 0 ? -1 : (int64_t)(t1 * 1e6 + 0.5);
        if (*end != ',') break;
        p = end + 1;
    }
}

static void parse_pci(device_t *d) {
    unsigned dom = 0, bus = 0, dev = 0, fn = 0;
    if (sscanf(d->pci, "%x:%x:%x.%x", &dom, &bus, &dev, &fn) == 4) {
        d->domain = dom;
        d->bus = bus;
        d->device = dev;
    }
}

static void set_defaults(void) {
    g_manual_clock = 0;
    g_manual_us = 0;
    g_energy_update_us = 100000;
    g_power_update_us = 20000;
    g_lost_after_us = -1;
    g_energy_field = 0;
    g_count = 1;
    g_cuda_driver_version = 12080;
    g_clock_sample_us = 20000;
    memset(g_ret, 0, sizeof g_ret);
    memset(g_dev, 0, sizeof g_dev);
    for (int i = 0; i < MAX_DEVICES; i++) {
        device_t *d = &g_dev[i];
        snprintf(d->uuid, sizeof d->uuid, "GPU-00000000-0000-0000-0000-00000000000%d", i);
        snprintf(d->name, sizeof d->name, "NVML Stub GPU %d", i);
        snprintf(d->pci, sizeof d->pci, "00000000:%02X:00.0", 0x10 + i);
        parse_pci(d);
        parse_timeline(&d->power, "100000");
        parse_timeline(&d->cpu_power, "0");
        parse_timeline(&d->sm_clock, "1410");
        parse_timeline(&d->mem_clock, "1215");
        parse_timeline(&d->temp, "40");
        parse_timeline(&d->limit, "300000");
        parse_timeline(&d->reasons, "0");
        d->max_sm_clock = 1980;
        memset(d->affinity, 0xff, sizeof d->affinity);
        d->nprocs = 0;
    }
}

static void load_config(void) {
    set_defaults();
    const char *path = getenv("NVML_STUB_CONFIG");
    if (path == NULL) return;
    FILE *f = fopen(path, "r");
    if (f == NULL) return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        char *eq = strchr(line, '=');
        if (line[0] == '#' || eq == NULL) continue;
        *eq = 0;
        const char *key = line, *val = eq + 1;
        if (strcmp(key, "clock") == 0) g_manual_clock = strcmp(val, "manual") == 0;
        else if (strcmp(key, "devices") == 0) {
            g_count = atoi(val);
            if (g_count > MAX_DEVICES) g_count = MAX_DEVICES;
        } else if (strcmp(key, "energy_update_us") == 0) g_energy_update_us = strtoll(val, NULL, 0);
        else if (strcmp(key, "power_update_us") == 0) g_power_update_us = strtoll(val, NULL, 0);
        else if (strcmp(key, "lost_after_us") == 0) g_lost_after_us = strtoll(val, NULL, 0);
        else if (strcmp(key, "energy_field") == 0) g_energy_field = atoi(val);
        else if (strcmp(key, "cuda_driver_version") == 0)
            g_cuda_driver_version = strtoll(val, NULL, 0);
        else if (strcmp(key, "clock_sample_us") == 0) g_clock_sample_us = strtoll(val, NULL, 0);
        else if (strncmp(key, "ret.", 4) == 0) {
            for (int r = 0; r < R_N; r++)
                if (strcmp(key + 4, g_ret_names[r]) == 0) g_ret[r] = atoi(val);
        } else if (strncmp(key, "dev", 3) == 0) {
            char *dot;
            long i = strtol(key + 3, &dot, 10);
            if (*dot != '.' || i < 0 || i >= MAX_DEVICES) continue;
            device_t *d = &g_dev[i];
            const char *k = dot + 1;
            if (strcmp(k, "uuid") == 0) snprintf(d->uuid, sizeof d->uuid, "%s", val);
            else if (strcmp(k, "name") == 0) snprintf(d->name, sizeof d->name, "%s", val);
            else if (strcmp(k, "pci") == 0) {
                snprintf(d->pci, sizeof d->pci, "%s", val);
                parse_pci(d);
            } else if (strcmp(k, "mig") == 0) d->mig = atoi(val);
            else if (strcmp(k, "c2c") == 0) d->c2c = atoi(val);
            else if (strcmp(k, "cpu_power") == 0) parse_timeline(&d->cpu_power, val);
            else if (strcmp(k, "power") == 0) parse_timeline(&d->power, val);
            else if (strcmp(k, "energy0_mj") == 0) d->energy0_mj = strtoll(val, NULL, 0);
            else if (strcmp(k, "sm_clock") == 0) parse_timeline(&d->sm_clock, val);
            else if (strcmp(k, "mem_clock") == 0) parse_timeline(&d->mem_clock, val);
            else if (strcmp(k, "temp") == 0) parse_timeline(&d->temp, val);
            else if (strcmp(k, "limit_mw") == 0) parse_timeline(&d->limit, val);
            else if (strcmp(k, "reasons") == 0) parse_timeline(&d->reasons, val);
            else if (strcmp(k, "affinity") == 0) parse_affinity(d, val);
            else if (strcmp(k, "procs") == 0) parse_procs(d, val);
            else if (strcmp(k, "max_sm_clock") == 0) d->max_sm_clock = strtoll(val, NULL, 0);
        }
    }
    fclose(f);
}

/* Common checks of every device call: initialised, a known handle, the GPU not lost. */
static nvmlReturn_t check(device_t *d) {
    if (g_refcount == 0) return NVML_ERROR_UNINITIALIZED;
    if (d < g_dev || d >= g_dev + g_count) return NVML_ERROR_INVALID_ARGUMENT;
    if (g_lost_after_us >= 0 && now_us() >= g_lost_after_us) return NVML_ERROR_GPU_IS_LOST;
    return NVML_SUCCESS;
}

#define CHECK(d, entry)                             \
    do {                                            \
        nvmlReturn_t r_ = check(d);                 \
        if (r_ != NVML_SUCCESS) return r_;          \
        if (g_ret[entry] != 0) return g_ret[entry]; \
    } while (0)

static int64_t quantize(int64_t t_us, int64_t step_us) {
    return step_us > 0 ? (t_us / step_us) * step_us : t_us;
}

nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    if (g_refcount == 0) {
        load_config();
        if (g_ret[R_INIT] != 0) return g_ret[R_INIT];
        const char *origin = getenv("NVML_STUB_ORIGIN_NS");
        if (origin != NULL && *origin) {
            g_init_ns = strtoll(origin, NULL, 10);
            g_init_epoch_us = 1600000000000000LL; /* the same in every process */
        } else {
            g_init_ns = mono_ns();
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            g_init_epoch_us = (int64_t)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
        }
    }
    g_refcount++;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
nvmlReturn_t nvmlInit(void) { return nvmlInitWithFlags(0); }

nvmlReturn_t nvmlShutdown(void) {
    if (g_refcount == 0) return NVML_ERROR_UNINITIALIZED;
    g_refcount--;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
        case 0: return "Success";
        case 1: return "Uninitialized";
        case 2: return "Invalid Argument";
        case 3: return "Not Supported";
        case 4: return "Insufficient Permissions";
        case 9: return "Driver Not Loaded";
        case 15: return "GPU is lost";
        default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    if (g_refcount == 0) return NVML_ERROR_UNINITIALIZED;
    if (length < 9) return NVML_ERROR_INSUFFICIENT_SIZE;
    snprintf(version, length, "stub-1.0");
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    if (g_refcount == 0) return NVML_ERROR_UNINITIALIZED;
    if (g_ret[R_COUNT] != 0) return g_ret[R_COUNT];
    *count = (unsigned int)g_count;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetCount(unsigned int *count) { return nvmlDeviceGetCount_v2(count); }

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, device_t **device) {
    if (g_refcount == 0) return NVML_ERROR_UNINITIALIZED;
    if (index >= (unsigned int)g_count) return NVML_ERROR_INVALID_ARGUMENT;
    *device = &g_dev[index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, device_t **device) {
    if (g_refcount == 0) return NVML_ERROR_UNINITIALIZED;
    if (uuid == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    for (int i = 0; i < g_count; i++) {
        if (strcmp(g_dev[i].uuid, uuid) == 0) {
            *device = &g_dev[i];
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_NOT_FOUND;
}

nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char *bus_id, device_t **device) {
    if (g_refcount == 0) return NVML_ERROR_UNINITIALIZED;
    unsigned dom = 0, bus = 0, dev = 0, fn = 0;
    if (bus_id == NULL || sscanf(bus_id, "%x:%x:%x.%x", &dom, &bus, &dev, &fn) != 4)
        return NVML_ERROR_INVALID_ARGUMENT;
    for (int i = 0; i < g_count; i++) {
        device_t *d = &g_dev[i];
        if (d->domain == dom && d->bus == bus && d->device == dev) {
            *device = d;
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_NOT_FOUND;
}

nvmlReturn_t nvmlDeviceGetName(device_t *d, char *name, unsigned int length) {
    nvmlReturn_t r = check(d);
    if (r != NVML_SUCCESS) return r;
    if (strlen(d->name) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    snprintf(name, length, "%s", d->name);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUUID(device_t *d, char *uuid, unsigned int length) {
    CHECK(d, R_UUID);
    if (strlen(d->uuid) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    snprintf(uuid, length, "%s", d->uuid);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(device_t *d, nvmlPciInfo_t *pci) {
    CHECK(d, R_PCI);
    memset(pci, 0, sizeof *pci);
    snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "%04X:%02X:%02X.0", d->domain, d->bus,
             d->device);
    snprintf(pci->busId, sizeof pci->busId, "%08X:%02X:%02X.0", d->domain, d->bus, d->device);
    pci->domain = d->domain;
    pci->bus = d->bus;
    pci->device = d->device;
    pci->pciDeviceId = 0x233010DE;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigMode(device_t *d, unsigned int *current, unsigned int *pending) {
    CHECK(d, R_MIG);
    *current = (unsigned int)d->mig;
    *pending = (unsigned int)d->mig;
    return NVML_SUCCESS;
}

/* Energy in mJ at the last counter update: the GPU's, or the whole module's. */
static unsigned long long energy_mj(device_t *d, int module) {
    int64_t t = quantize(now_us(), g_energy_update_us);
    int64_t nj = energy_nj(&d->power, t) + (module ? energy_nj(&d->cpu_power, t) : 0);
    return (unsigned long long)(d->energy0_mj + nj / 1000000);
}

/* Like the driver: on a C2C module the total-energy counter covers the module. */
nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(device_t *d, unsigned long long *energy) {
    CHECK(d, R_ENERGY);
    *energy = energy_mj(d, d->c2c);
    return NVML_SUCCESS;
}

/* Like recent GPUs: the power averaged over the last second, updated every energy step. */
static unsigned int average_power_mw(device_t *d) {
    int64_t t = quantize(now_us(), g_energy_update_us);
    int64_t a = t > 1000000 ? t - 1000000 : 0;
    if (t <= a) return (unsigned int)tl_at(&d->power, t);
    return (unsigned int)((energy_nj(&d->power, t) - energy_nj(&d->power, a)) / (t - a));
}

nvmlReturn_t nvmlDeviceGetPowerUsage(device_t *d, unsigned int *power_mw) {
    CHECK(d, R_POWER_USAGE);
    *power_mw = average_power_mw(d);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetFieldValues(device_t *d, int count, nvmlFieldValue_t *values) {
    CHECK(d, R_FIELD_CALL);
    int64_t t = now_us();
    for (int i = 0; i < count; i++) {
        nvmlFieldValue_t *v = &values[i];
        v->latencyUsec = 0;
        v->valueType = NVML_VALUE_TYPE_UNSIGNED_INT;
        if (v->fieldId == NVML_FI_DEV_POWER_INSTANT) {
            int64_t tq = quantize(t, g_power_update_us);
            v->nvmlReturn = g_ret[R_FIELD_INSTANT];
            v->timestamp = g_init_epoch_us + tq;
            v->value.uiVal = (unsigned int)tl_at(&d->power, tq);
        } else if (v->fieldId == NVML_FI_DEV_ENERGY) {
            int module = v->scopeId == NVML_POWER_SCOPE_MODULE;
            if (!g_energy_field || g_ret[R_ENERGY] != 0 || (module && !d->c2c) ||
                v->scopeId > NVML_POWER_SCOPE_MODULE) {
                v->nvmlReturn = g_ret[R_ENERGY] != 0 ? g_ret[R_ENERGY] : NVML_ERROR_NOT_SUPPORTED;
                continue;
            }
            v->nvmlReturn = NVML_SUCCESS;
            v->valueType = NVML_VALUE_TYPE_UNSIGNED_LONG_LONG;
            v->timestamp = g_init_epoch_us + quantize(t, g_energy_update_us);
            v->value.ullVal = energy_mj(d, module);
        } else if (v->fieldId == NVML_FI_DEV_PERF_POLICY_POWER || v->fieldId == NVML_FI_SW_THERM ||
                   v->fieldId == NVML_FI_HW_THERM || v->fieldId == NVML_FI_HW_POWER_BRAKE) {
            unsigned long long bits = v->fieldId == NVML_FI_DEV_PERF_POLICY_POWER ? REASON_SW_POWER_CAP
                                      : v->fieldId == NVML_FI_SW_THERM        ? REASON_SW_THERMAL
                                      : v->fieldId == NVML_FI_HW_THERM        ? REASON_HW_THERMAL
                                                                              : REASON_HW_POWER_BRAKE;
            v->nvmlReturn = g_ret[R_VIOLATION];
            v->valueType = NVML_VALUE_TYPE_UNSIGNED_LONG_LONG;
            v->timestamp = g_init_epoch_us + t;
            v->value.ullVal = (unsigned long long)reason_ns(&d->reasons, bits, t);
        } else if (v->fieldId == NVML_FI_DEV_POWER_AVERAGE) {
            v->nvmlReturn = NVML_SUCCESS;
            v->timestamp = g_init_epoch_us + quantize(t, g_energy_update_us);
            v->value.uiVal = average_power_mw(d);
        } else {
            v->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
        }
    }
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetClockInfo(device_t *d, unsigned int type, unsigned int *mhz) {
    CHECK(d, R_CLOCK);
    if (type == NVML_CLOCK_SM) *mhz = (unsigned int)tl_at(&d->sm_clock, now_us());
    else if (type == NVML_CLOCK_MEM) *mhz = (unsigned int)tl_at(&d->mem_clock, now_us());
    else return NVML_ERROR_NOT_SUPPORTED;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMaxClockInfo(device_t *d, unsigned int type, unsigned int *mhz) {
    CHECK(d, R_CLOCK);
    if (type != NVML_CLOCK_SM) return NVML_ERROR_NOT_SUPPORTED;
    *mhz = (unsigned int)d->max_sm_clock;
    return NVML_SUCCESS;
}

/* pynvml's c_nvmlSample_t. */
typedef struct {
    unsigned long long timeStamp;
    nvmlValue_t sampleValue;
} nvmlSample_t;

/* Like the driver's buffer of SM clock samples: one every clock_sample_us, after ``since``
 * (us since 1970, the stub's epoch) up to now, the newest 120 at most. */
nvmlReturn_t nvmlDeviceGetSamples(device_t *d, unsigned int type, unsigned long long since,
                                  unsigned int *value_type, unsigned int *count,
                                  nvmlSample_t *samples) {
    CHECK(d, R_SAMPLES);
    if (type != NVML_PROCESSOR_CLK_SAMPLES) return NVML_ERROR_NOT_SUPPORTED;
    int64_t now = now_us(), step = g_clock_sample_us > 0 ? g_clock_sample_us : 20000;
    int64_t after = (int64_t)since - g_init_epoch_us;
    int64_t first = after < 0 ? 0 : (after / step + 1) * step;
    int64_t n = first > now ? 0 : (now - first) / step + 1;
    if (n > 120) {
        first += (n - 120) * step;
        n = 120;
    }
    if (n == 0) return NVML_ERROR_NOT_FOUND;
    *value_type = NVML_VALUE_TYPE_UNSIGNED_INT;
    if (samples == NULL) {
        *count = (unsigned int)n;
        return NVML_SUCCESS;
    }
    if (*count < n) n = *count;
    for (int64_t k = 0; k < n; k++) {
        int64_t t = first + k * step;
        samples[k].timeStamp = (unsigned long long)(g_init_epoch_us + t);
        samples[k].sampleValue.uiVal = (unsigned int)tl_at(&d->sm_clock, t);
    }
    *count = (unsigned int)n;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCpuAffinity(device_t *d, unsigned int size, unsigned long *cpus) {
    CHECK(d, R_AFFINITY);
    for (unsigned int i = 0; i < size; i++)
        cpus[i] = i < MAX_CPUS / 64 ? (unsigned long)d->affinity[i] : 0;
    return NVML_SUCCESS;
}

/* The compute processes alive now; the caller's own pid for "self". */
static nvmlReturn_t running(device_t *d, unsigned int *count, nvmlProcessInfo_t *infos) {
    CHECK(d, R_PROCS);
    int64_t t = now_us();
    unsigned int n = 0;
    nvmlProcessInfo_t live[MAX_PROCS];
    for (int i = 0; i < d->nprocs; i++) {
        if (t < d->procs[i].t0_us || (d->procs[i].t1_us >= 0 && t >= d->procs[i].t1_us)) continue;
        live[n].pid = d->procs[i].self ? (unsigned int)getpid() : d->procs[i].pid;
        live[n].usedGpuMemory = d->procs[i].bytes;
        live[n].gpuInstanceId = 0xFFFFFFFFu;
        live[n].computeInstanceId = 0xFFFFFFFFu;
        n++;
    }
    if (infos == NULL || *count < n) {
        unsigned int had = *count;
        *count = n;
        return (n == 0 && had == 0) ? NVML_SUCCESS : NVML_ERROR_INSUFFICIENT_SIZE;
    }
    for (unsigned int i = 0; i < n; i++) infos[i] = live[i];
    *count = n;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(device_t *d, unsigned int *count,
                                                     nvmlProcessInfo_t *infos) {
    return running(d, count, infos);
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(device_t *d, unsigned int *count,
                                                      nvmlProcessInfo_t *infos) {
    (void)infos;
    CHECK(d, R_PROCS);
    *count = 0;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *version) {
    if (g_refcount == 0) return NVML_ERROR_UNINITIALIZED;
    if (g_ret[R_CUDA_VERSION] != 0) return g_ret[R_CUDA_VERSION];
    *version = (int)g_cuda_driver_version;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *version) {
    return nvmlSystemGetCudaDriverVersion_v2(version);
}

nvmlReturn_t nvmlDeviceGetTemperature(device_t *d, unsigned int sensor, unsigned int *temp_c) {
    CHECK(d, R_TEMPERATURE);
    if (sensor != 0) return NVML_ERROR_INVALID_ARGUMENT;
    *temp_c = (unsigned int)tl_at(&d->temp, now_us());
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(device_t *d, unsigned int *limit_mw) {
    CHECK(d, R_LIMIT);
    *limit_mw = (unsigned int)tl_at(&d->limit, now_us());
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerManagementLimit(device_t *d, unsigned int *limit_mw) {
    return nvmlDeviceGetEnforcedPowerLimit(d, limit_mw);
}

static nvmlReturn_t reasons(device_t *d, unsigned long long *mask) {
    CHECK(d, R_REASONS);
    *mask = (unsigned long long)tl_at(&d->reasons, now_us());
    return NVML_SUCCESS;
}

#ifndef STUB_OLD_DRIVER
/* Newer drivers (R535+) name them clock-event reasons; the old name stays as an alias. */
nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(device_t *d, unsigned long long *mask) {
    return reasons(d, mask);
}

/* pynvml's c_nvmlC2cModeInfo_v1_t. */
typedef struct {
    unsigned int isC2cEnabled;
} nvmlC2cModeInfo_v1_t;

nvmlReturn_t nvmlDeviceGetC2cModeInfoV(device_t *d, nvmlC2cModeInfo_v1_t *info) {
    CHECK(d, R_C2C);
    info->isC2cEnabled = (unsigned int)d->c2c;
    return NVML_SUCCESS;
}
#endif

nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(device_t *d, unsigned long long *mask) {
    return reasons(d, mask);
}
