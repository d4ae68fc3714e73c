// Runs ggml's FLASH_ATTN_EXT (CPU backend, 1 thread) on deterministic inputs and writes its
// output as little-endian f32, token-major [m][n_heads][head_dim].
// Usage: gen M POS0 N_HEADS N_KV_HEADS QSCALE SEED OUT.bin
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <math.h>
#include <string.h>
#include "ggml.h"
#include "ggml-cpu.h"

static uint32_t state;
static float next_uniform(void) { // xorshift32, uniform in [-1, 1)
    state ^= state << 13; state ^= state >> 17; state ^= state << 5;
    return (float)(state >> 8) / 8388608.0f - 1.0f;
}

int main(int argc, char **argv) {
    if (argc != 8) { fprintf(stderr, "usage\n"); return 2; }
    const int m = atoi(argv[1]), pos0 = atoi(argv[2]), H = atoi(argv[3]), Hkv = atoi(argv[4]);
    const float qscale = atof(argv[5]);
    state = (uint32_t) strtoul(argv[6], 0, 10);
    const int D = 64, n_kv = pos0 + m;
    struct ggml_init_params ip = { 256u << 20, NULL, false };
    struct ggml_context *ctx = ggml_init(ip);
    struct ggml_tensor *q = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, D, m, H);
    struct ggml_tensor *k = ggml_new_tensor_3d(ctx, GGML_TYPE_F16, D, n_kv, Hkv);
    struct ggml_tensor *v = ggml_new_tensor_3d(ctx, GGML_TYPE_F16, D, n_kv, Hkv);
    struct ggml_tensor *mask = ggml_new_tensor_2d(ctx, GGML_TYPE_F16, n_kv, m);
    // generation order (the Rust side repeats it): q token-major [t][h][d], then k and v
    // head-major [g][j][d], k before v per element pair
    for (int t = 0; t < m; t++) for (int h = 0; h < H; h++) for (int d = 0; d < D; d++)
        ((float *) q->data)[d + t * D + h * D * m] = next_uniform() * qscale * (h + 1);
    for (int g = 0; g < Hkv; g++) for (int j = 0; j < n_kv; j++) for (int d = 0; d < D; d++) {
        ((ggml_fp16_t *) k->data)[d + j * D + g * D * n_kv] = ggml_fp32_to_fp16(next_uniform());
        ((ggml_fp16_t *) v->data)[d + j * D + g * D * n_kv] = ggml_fp32_to_fp16(next_uniform());
    }
    for (int t = 0; t < m; t++) for (int j = 0; j < n_kv; j++)
        ((ggml_fp16_t *) mask->data)[j + t * n_kv] = ggml_fp32_to_fp16(j <= pos0 + t ? 0.0f : -INFINITY);
    struct ggml_tensor *out = ggml_flash_attn_ext(ctx, q, k, v, mask, 1.0f / sqrtf((float) D), 0.0f, 0.0f);
    struct ggml_cgraph *gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, out);
    if (ggml_graph_compute_with_ctx(ctx, gf, 1) != GGML_STATUS_SUCCESS) return 1;
    // out: ne = [D, H, m], contiguous: token-major already
    FILE *f = fopen(argv[7], "wb");
    fwrite(out->data, sizeof(float), (size_t) D * H * m, f);
    fclose(f);
    return 0;
}
