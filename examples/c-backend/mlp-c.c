/* The book's two-layer net (Deep Learning from Scratch, ch05) as a harness process backend.
 *
 * It speaks the process protocol (docs/process-protocol.md) on stdin/stdout: setup, train,
 * predict, params, quit. The products go through CBLAS (OpenBLAS); everything else is plain
 * loops. Layers as in the book: Affine -> Relu -> Affine -> SoftmaxWithLoss, forward then
 * backward. The one liberty: each weight update is folded into its gradient product
 * (W <- W - lr * x^T dout is one sgemm with alpha = -lr, beta = 1), so dW is never stored.
 * float32 only; a float64 spec is answered with an error.
 */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LINE_MAX_BYTES 8192
#define PREDICT_BLOCK 4096

typedef struct {
    int rows, features, hidden, classes, batch, threads;
    float lr;
    float *train_x; /* rows x features */
    int *train_y;   /* rows */
    float *W1, *b1, *W2, *b2;
    /* per-step buffers, batch rows each */
    float *x, *h, *y, *dh;
    int *t;
    int *indices;
    size_t indices_cap;
    /* the last array predict read, kept for the next request naming the same file */
    char predict_path[LINE_MAX_BYTES];
    float *predict_x;
    int predict_rows;
} Net;

static void reply(const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vfprintf(stdout, fmt, args);
    va_end(args);
    fputc('\n', stdout);
    fflush(stdout);
}

static void *alloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size);
    if (!p) {
        reply("error out of memory allocating %zu bytes", count * size);
        exit(1);
    }
    return p;
}

/* Reads exactly count items of size bytes from dir/name (or name alone when dir is NULL);
 * 0 on success, else replies with the reason. */
static int read_file(const char *dir, const char *name, void *into, size_t size, size_t count) {
    char path[LINE_MAX_BYTES + 64];
    snprintf(path, sizeof path, "%s%s%s", dir ? dir : "", dir ? "/" : "", name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        reply("error cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    size_t got = fread(into, size, count, f);
    fclose(f);
    if (got != count) {
        reply("error %s holds %zu of the %zu values expected", path, got, count);
        return -1;
    }
    return 0;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int setup(Net *n, char *args) {
    char dir[LINE_MAX_BYTES] = "", dtype[32] = "";
    for (char *tok = strtok(args, " "); tok; tok = strtok(NULL, " ")) {
        char *eq = strchr(tok, '=');
        if (!eq) continue;
        *eq = '\0';
        const char *key = tok, *value = eq + 1;
        if (!strcmp(key, "dir")) snprintf(dir, sizeof dir, "%s", value);
        else if (!strcmp(key, "dtype")) snprintf(dtype, sizeof dtype, "%s", value);
        else if (!strcmp(key, "rows")) n->rows = atoi(value);
        else if (!strcmp(key, "features")) n->features = atoi(value);
        else if (!strcmp(key, "hidden")) n->hidden = atoi(value);
        else if (!strcmp(key, "classes")) n->classes = atoi(value);
        else if (!strcmp(key, "batch")) n->batch = atoi(value);
        else if (!strcmp(key, "threads")) n->threads = atoi(value);
        else if (!strcmp(key, "lr")) n->lr = strtof(value, NULL);
        /* other keys (protocol, seed, ...) are not needed here */
    }
    if (strcmp(dtype, "float32")) {
        reply("error mlp-c computes in float32 only, not %s; run it with --set dtype=float32",
              dtype);
        return -1;
    }
    if (!dir[0] || n->rows <= 0 || n->features <= 0 || n->hidden <= 0 || n->classes <= 0 ||
        n->batch <= 0) {
        reply("error setup needs dir, rows, features, hidden, classes and batch");
        return -1;
    }
    if (n->threads > 0) openblas_set_num_threads(n->threads);
    size_t F = n->features, H = n->hidden, C = n->classes, B = n->batch;
    n->train_x = alloc((size_t)n->rows * F, sizeof(float));
    n->train_y = alloc(n->rows, sizeof(int));
    n->W1 = alloc(F * H, sizeof(float));
    n->b1 = alloc(H, sizeof(float));
    n->W2 = alloc(H * C, sizeof(float));
    n->b2 = alloc(C, sizeof(float));
    if (read_file(dir, "train_x.bin", n->train_x, sizeof(float), (size_t)n->rows * F) ||
        read_file(dir, "train_y.bin", n->train_y, sizeof(int), n->rows) ||
        read_file(dir, "W1.bin", n->W1, sizeof(float), F * H) ||
        read_file(dir, "b1.bin", n->b1, sizeof(float), H) ||
        read_file(dir, "W2.bin", n->W2, sizeof(float), H * C) ||
        read_file(dir, "b2.bin", n->b2, sizeof(float), C))
        return -1;
    n->x = alloc(B * F, sizeof(float));
    n->h = alloc(B * H, sizeof(float));
    n->y = alloc(B * C, sizeof(float));
    n->dh = alloc(B * H, sizeof(float));
    n->t = alloc(B, sizeof(int));
    reply("ready mlp-c (CBLAS: %s)", openblas_get_config());
    return 0;
}

/* Affine: out = in . W + b, for rows of in. */
static void affine_forward(const float *in, const float *W, const float *b, float *out, int rows,
                           int in_dim, int out_dim) {
    for (int r = 0; r < rows; r++) memcpy(out + (size_t)r * out_dim, b, out_dim * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, out_dim, in_dim, 1.0f, in,
                in_dim, W, out_dim, 1.0f, out, out_dim);
}

static void relu_forward(float *h, size_t count) {
    for (size_t i = 0; i < count; i++)
        if (h[i] <= 0) h[i] = 0;
}

/* SoftmaxWithLoss forward: y becomes the softmax; returns the batch-mean cross-entropy. */
static double softmax_with_loss_forward(float *y, const int *t, int rows, int classes) {
    double loss = 0;
    for (int r = 0; r < rows; r++) {
        float *row = y + (size_t)r * classes, max = row[0], sum = 0;
        for (int c = 1; c < classes; c++) max = row[c] > max ? row[c] : max;
        for (int c = 0; c < classes; c++) sum += row[c] = expf(row[c] - max);
        for (int c = 0; c < classes; c++) row[c] /= sum;
        loss -= log(row[t[r]] + 1e-7);
    }
    return loss / rows;
}

/* SoftmaxWithLoss backward, in place: dy = (y - onehot(t)) / rows. */
static void softmax_with_loss_backward(float *y, const int *t, int rows, int classes) {
    for (int r = 0; r < rows; r++) {
        y[(size_t)r * classes + t[r]] -= 1;
        for (int c = 0; c < classes; c++) y[(size_t)r * classes + c] /= rows;
    }
}

/* Affine backward with the SGD update folded in: b -= lr * sum(dout), W -= lr * in^T dout. */
static void affine_backward_update(const float *in, const float *dout, float *W, float *b,
                                   int rows, int in_dim, int out_dim, float lr) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < out_dim; c++) b[c] -= lr * dout[(size_t)r * out_dim + c];
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, in_dim, out_dim, rows, -lr, in, in_dim,
                dout, out_dim, 1.0f, W, out_dim);
}

static double train_step(Net *n, const int *rows_idx) {
    int B = n->batch, F = n->features, H = n->hidden, C = n->classes;
    for (int r = 0; r < B; r++) {
        int row = rows_idx[r];
        memcpy(n->x + (size_t)r * F, n->train_x + (size_t)row * F, F * sizeof(float));
        n->t[r] = n->train_y[row];
    }
    affine_forward(n->x, n->W1, n->b1, n->h, B, F, H);
    relu_forward(n->h, (size_t)B * H);
    affine_forward(n->h, n->W2, n->b2, n->y, B, H, C);
    double loss = softmax_with_loss_forward(n->y, n->t, B, C);
    softmax_with_loss_backward(n->y, n->t, B, C); /* y now holds dy */
    /* Affine2 backward: dh = dy . W2^T (with the old W2), then W2 and b2 step. */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, H, C, 1.0f, n->y, C, n->W2, C, 0.0f,
                n->dh, H);
    affine_backward_update(n->h, n->y, n->W2, n->b2, B, H, C, n->lr);
    /* Relu backward: no gradient where the forward output was clipped. */
    for (size_t i = 0; i < (size_t)B * H; i++)
        if (n->h[i] <= 0) n->dh[i] = 0;
    affine_backward_update(n->x, n->dh, n->W1, n->b1, B, F, H, n->lr);
    return loss;
}

static int train(Net *n, const char *args) {
    int steps, batch;
    if (sscanf(args, "%d %d", &steps, &batch) != 2 || steps <= 0 || batch != n->batch) {
        reply("error train needs 'train STEPS %d', got 'train %s'", n->batch, args);
        return -1;
    }
    size_t count = (size_t)steps * batch;
    if (count > n->indices_cap) {
        free(n->indices);
        n->indices = alloc(count, sizeof(int));
        n->indices_cap = count;
    }
    if (fread(n->indices, sizeof(int), count, stdin) != count) {
        reply("error stdin ended inside the batch indices");
        return -1;
    }
    for (size_t i = 0; i < count; i++)
        if (n->indices[i] < 0 || n->indices[i] >= n->rows) {
            reply("error batch index %d is outside 0..%d", n->indices[i], n->rows - 1);
            return -1;
        }
    double started = now(), total = 0;
    for (int s = 0; s < steps; s++) total += train_step(n, n->indices + (size_t)s * batch);
    reply("loss %.9g %.9f", total / steps, now() - started);
    return 0;
}

static int predict(Net *n, const char *args) {
    char path[LINE_MAX_BYTES];
    int rows;
    if (sscanf(args, "%8191s %d", path, &rows) != 2 || rows < 0) {
        reply("error predict needs 'predict FILE ROWS', got 'predict %s'", args);
        return -1;
    }
    size_t F = n->features;
    if (strcmp(path, n->predict_path) || rows != n->predict_rows) {
        free(n->predict_x);
        n->predict_x = alloc((size_t)rows * F, sizeof(float));
        if (read_file(NULL, path, n->predict_x, sizeof(float), (size_t)rows * F)) return -1;
        snprintf(n->predict_path, sizeof n->predict_path, "%s", path);
        n->predict_rows = rows;
    }
    int *ids = alloc(rows, sizeof(int));
    float *h = alloc((size_t)PREDICT_BLOCK * n->hidden, sizeof(float));
    float *y = alloc((size_t)PREDICT_BLOCK * n->classes, sizeof(float));
    for (int start = 0; start < rows; start += PREDICT_BLOCK) {
        int count = rows - start < PREDICT_BLOCK ? rows - start : PREDICT_BLOCK;
        affine_forward(n->predict_x + (size_t)start * F, n->W1, n->b1, h, count, F, n->hidden);
        relu_forward(h, (size_t)count * n->hidden);
        affine_forward(h, n->W2, n->b2, y, count, n->hidden, n->classes);
        for (int r = 0; r < count; r++) {
            const float *row = y + (size_t)r * n->classes;
            int best = 0;
            for (int c = 1; c < n->classes; c++)
                if (row[c] > row[best]) best = c;
            ids[start + r] = best;
        }
    }
    fprintf(stdout, "ids %d\n", rows);
    fwrite(ids, sizeof(int), rows, stdout);
    fflush(stdout);
    free(ids), free(h), free(y);
    return 0;
}

static void params(const Net *n) {
    size_t F = n->features, H = n->hidden, C = n->classes;
    fputs("params\n", stdout);
    fwrite(n->W1, sizeof(float), F * H, stdout);
    fwrite(n->b1, sizeof(float), H, stdout);
    fwrite(n->W2, sizeof(float), H * C, stdout);
    fwrite(n->b2, sizeof(float), C, stdout);
    fflush(stdout);
}

int main(void) {
    static char line[LINE_MAX_BYTES];
    Net net = {0};
    int ready = 0;
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *args = strchr(line, ' ');
        if (args) *args++ = '\0';
        else args = "";
        if (!strcmp(line, "quit")) return 0;
        if (!strcmp(line, "setup")) {
            if (setup(&net, args)) return 1;
            ready = 1;
        } else if (!ready) {
            reply("error '%s' before setup", line);
            return 1;
        } else if (!strcmp(line, "train")) {
            if (train(&net, args)) return 1;
        } else if (!strcmp(line, "predict")) {
            if (predict(&net, args)) return 1;
        } else if (!strcmp(line, "params")) {
            params(&net);
        } else {
            reply("error unknown request '%s'", line);
            return 1;
        }
    }
    return 0; /* stdin closed: the harness is gone */
}
