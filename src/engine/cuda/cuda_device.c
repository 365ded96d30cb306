/*
 * cuda_device.c - which GPUs exist, which one the engine uses, and the
 * helpers that turn CUDA and cuBLAS status codes into wisp_err messages.
 *
 * Listing never fails silently: when no device can be used the error says
 * why in the runtime's words ("no CUDA-capable device is detected", "CUDA
 * driver version is insufficient for CUDA runtime version"), which is what
 * `--device cuda` reports and what initialize's capabilities omit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "engine/cuda/cuda_int.h"

int wisp_cuda_fail(wisp_err *err, cudaError_t e, const char *call, const char *file, int line)
{
    const char *base = strrchr(file, '/');
    return wisp_err_set(err, WISP_E_DEVICE, "CUDA error %s (%s) in %s at %s:%d",
                        cudaGetErrorName(e), cudaGetErrorString(e), call, base ? base + 1 : file,
                        line);
}

int wisp_cublas_fail(wisp_err *err, cublasStatus_t st, const char *call, const char *file, int line)
{
    const char *base = strrchr(file, '/');
    return wisp_err_set(err, WISP_E_DEVICE, "cuBLAS error %s in %s at %s:%d",
                        cublasGetStatusString(st), call, base ? base + 1 : file, line);
}

static int device_info(int i, wisp_cuda_device_info *d, wisp_err *err)
{
    struct cudaDeviceProp p;
    memset(d, 0, sizeof(*d));
    WISP_CU(err, cudaGetDeviceProperties(&p, i));
    d->index = i;
    snprintf(d->name, sizeof(d->name), "%s", p.name);
    d->cc_major = p.major;
    d->cc_minor = p.minor;
    d->n_sms = p.multiProcessorCount;
    d->total_bytes = p.totalGlobalMem;
    d->usable = p.major >= 8;
    /* Free memory needs a context on that device; keep the caller's. */
    int prev = 0;
    WISP_CU(err, cudaGetDevice(&prev));
    WISP_CU(err, cudaSetDevice(i));
    size_t free_b = 0, total_b = 0;
    cudaError_t e = cudaMemGetInfo(&free_b, &total_b);
    cudaSetDevice(prev);
    if (e != cudaSuccess)
        return wisp_cuda_fail(err, e, "cudaMemGetInfo", __FILE__, __LINE__);
    d->free_bytes = free_b;
    d->total_bytes = total_b;
    return 0;
}

int wisp_cuda_devices(wisp_cuda_device_info *out, int cap, wisp_err *err)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess)
        return wisp_err_set(err, WISP_E_DEVICE, "no usable CUDA device: %s (%s)",
                            cudaGetErrorString(e), cudaGetErrorName(e));
    if (n == 0)
        return wisp_err_set(err, WISP_E_DEVICE, "no usable CUDA device: none found");
    for (int i = 0; i < n && i < cap; i++)
        WISP_TRY(device_info(i, &out[i], err));
    return n;
}

int wisp_cuda_select_device(int index, wisp_cuda_device_info *info, wisp_err *err)
{
    wisp_cuda_device_info first;
    int n = wisp_cuda_devices(&first, 1, err);
    if (n < 0)
        return n;
    int idx = 0;
    const char *env = getenv("WISP_CUDA_DEVICE");
    if (index >= 0) {
        if (index >= n)
            return wisp_err_set(err, WISP_E_DEVICE, "cuda:%d: this machine has %d CUDA device%s",
                                index, n, n == 1 ? "" : "s");
        idx = index;
    } else if (env && *env) {
        char *end = NULL;
        long v = strtol(env, &end, 10);
        if (*end != '\0' || v < 0 || v >= n)
            return wisp_err_set(err, WISP_E_INVALID,
                                "WISP_CUDA_DEVICE=%s: not a device index in [0, %d)", env, n);
        idx = (int)v;
    }
    WISP_TRY(device_info(idx, info, err));
    if (!info->usable)
        return wisp_err_set(err, WISP_E_UNSUPPORTED,
                            "CUDA device %d (%s) has compute capability %d.%d; wisp's kernels "
                            "are built for 8.0 (Ampere) and newer",
                            idx, info->name, info->cc_major, info->cc_minor);
    WISP_CU(err, cudaSetDevice(idx));
    WISP_LOGI("cuda: device %d: %s, sm_%d%d, %d SMs, %.1f GiB free of %.1f GiB", idx, info->name,
              info->cc_major, info->cc_minor, info->n_sms, (double)info->free_bytes / (1 << 30),
              (double)info->total_bytes / (1 << 30));
    return 0;
}
