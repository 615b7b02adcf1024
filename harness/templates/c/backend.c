/* __NAME__: a backend for mlp-bench in C, speaking the process protocol
 * (docs/process-protocol.md in the mlp-bench repository) on stdin and stdout.
 *
 * The book's network (Deep Learning from Scratch, ch05) written plainly: Affine -> ReLU ->
 * Affine -> SoftmaxWithLoss, plain SGD, float32, one thread, no libraries beyond libc and libm.
 * Make it yours (BLAS, threads, SIMD), then check it still does the same job:
 *
 *     make && python -m harness verify --backend-cmd __NAME__=./__NAME__ --timeout 60
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_BYTES 8192

typedef struct {
    int rows, features, hidden, classes, batch;
    float lr;
    float *train_x, *W1, *b1, *W2, *b2; /* the weights are the net's: updated in place */
    int32_t *train_y;
    char predict_path[LINE_BYTES]; /* the last file predict read: files never change */
    float *predict_x;
    int predict_rows;
} Net;

/* Every answer is one line, flushed at once: the harness waits for it. */
static void reply(const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vprintf(fmt, args);
    va_end(args);
    putchar('\n');
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

static int read_file(const char *dir, const char *name, void *out, size_t size, size_t count) {
    char path[LINE_BYTES];
    snprintf(path, sizeof path, "%s%s%s", dir ? dir : "", dir ? "/" : "", name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        reply("error cannot open %s", path);
        return -1;
    }
    size_t got = fread(out, size, count, f);
    fclose(f);
    if (got != count) {
        reply("error %s holds %zu of the %zu values expected", path, got, count);
        return -1;
    }
    return 0;
}

static int setup(Net *n, char *args) {
    char dir[LINE_BYTES] = "", dtype[32] = "float32";
    n->lr = 0;
    for (char *tok = strtok(args, " "); tok; tok = strtok(NULL, " ")) {
        char *value = strchr(tok, '=');
        if (!value) continue;
        *value++ = '\0';
        if (!strcmp(tok, "dir")) snprintf(dir, sizeof dir, "%s", value);
        else if (!strcmp(tok, "dtype")) snprintf(dtype, sizeof dtype, "%s", value);
        else if (!strcmp(tok, "rows")) n->rows = atoi(value);
        else if (!strcmp(tok, "features")) n->features = atoi(value);
        else if (!strcmp(tok, "hidden")) n->hidden = atoi(value);
        else if (!strcmp(tok, "classes")) n->classes = atoi(value);
        else if (!strcmp(tok, "batch")) n->batch = atoi(value);
        else if (!strcmp(tok, "lr")) n->lr = strtof(value, NULL);
    } /* keys this program does not need (threads, seed, ...) are ignored */
    if (strcmp(dtype, "float32")) {
        reply("error __NAME__ computes in float32 only, not %s", dtype);
        return -1;
    }
    if (!*dir || n->rows <= 0 || n->features <= 0 || n->hidden <= 0 || n->classes <= 0 ||
        n->batch <= 0) {
        reply("error setup needs dir, rows, features, hidden, classes and batch");
        return -1;
    }
    size_t F = n->features, H = n->hidden, C = n->classes;
    n->train_x = alloc((size_t)n->rows * F, sizeof(float));
    n->train_y = alloc(n->rows, sizeof(int32_t));
    n->W1 = alloc(F * H, sizeof(float));
    n->b1 = alloc(H, sizeof(float));
    n->W2 = alloc(H * C, sizeof(float));
    n->b2 = alloc(C, sizeof(float));
    if (read_file(dir, "train_x.bin", n->train_x, sizeof(float), (size_t)n->rows * F) ||
        read_file(dir, "train_y.bin", n->train_y, sizeof(int32_t), n->rows) ||
        read_file(dir, "W1.bin", n->W1, sizeof(float), F * H) ||
        read_file(dir, "b1.bin", n->b1, sizeof(float), H) ||
        read_file(dir, "W2.bin", n->W2, sizeof(float), H * C) ||
        read_file(dir, "b2.bin", n->b2, sizeof(float), C))
        return -1;
    reply("ready __NAME__ (plain C, float32, one thread)");
    return 0;
}

/* Affine: out (m x cols) = x (m x inner) . W (inner x cols) + b */
static void affine(const float *x, const float *W, const float *b, float *out, int m, int inner,
                   int cols) {
    for (int r = 0; r < m; r++) {
        float *o = out + (size_t)r * cols;
        for (int j = 0; j < cols; j++) o[j] = b[j];
        for (int k = 0; k < inner; k++) {
            float xv = x[(size_t)r * inner + k];
            if (xv == 0.0f) continue;
            const float *w = W + (size_t)k * cols;
            for (int j = 0; j < cols; j++) o[j] += xv * w[j];
        }
    }
}

/* One SGD step on the rows `idx`; returns the batch-mean cross-entropy. */
static double step(Net *n, const int32_t *idx, float *x, float *h, float *p, float *dh) {
    int B = n->batch, F = n->features, H = n->hidden, C = n->classes;
    for (int r = 0; r < B; r++)
        memcpy(x + (size_t)r * F, n->train_x + (size_t)idx[r] * F, F * sizeof(float));
    affine(x, n->W1, n->b1, h, B, F, H);
    for (int i = 0; i < B * H; i++) h[i] = h[i] > 0 ? h[i] : 0; /* ReLU */
    affine(h, n->W2, n->b2, p, B, H, C);
    double loss = 0;
    for (int r = 0; r < B; r++) { /* softmax, cross-entropy, and its gradient (p - onehot)/B */
        float *row = p + (size_t)r * C, top = row[0], sum = 0;
        for (int j = 1; j < C; j++) top = row[j] > top ? row[j] : top;
        for (int j = 0; j < C; j++) sum += row[j] = expf(row[j] - top);
        for (int j = 0; j < C; j++) row[j] /= sum;
        int y = n->train_y[idx[r]];
        loss -= log(row[y] + 1e-7);
        row[y] -= 1.0f;
        for (int j = 0; j < C; j++) row[j] /= B;
    }
    /* dh = dlogits . W2^T, through the ReLU; then W2, b2 and W1, b1 step down their gradients */
    for (int r = 0; r < B; r++)
        for (int k = 0; k < H; k++) {
            float acc = 0;
            for (int j = 0; j < C; j++) acc += p[(size_t)r * C + j] * n->W2[(size_t)k * C + j];
            dh[(size_t)r * H + k] = h[(size_t)r * H + k] > 0 ? acc : 0;
        }
    for (int k = 0; k < H; k++)
        for (int j = 0; j < C; j++) {
            float g = 0;
            for (int r = 0; r < B; r++) g += h[(size_t)r * H + k] * p[(size_t)r * C + j];
            n->W2[(size_t)k * C + j] -= n->lr * g;
        }
    for (int j = 0; j < C; j++) {
        float g = 0;
        for (int r = 0; r < B; r++) g += p[(size_t)r * C + j];
        n->b2[j] -= n->lr * g;
    }
    for (int i = 0; i < F; i++)
        for (int k = 0; k < H; k++) {
            float g = 0;
            for (int r = 0; r < B; r++) g += x[(size_t)r * F + i] * dh[(size_t)r * H + k];
            n->W1[(size_t)i * H + k] -= n->lr * g;
        }
    for (int k = 0; k < H; k++) {
        float g = 0;
        for (int r = 0; r < B; r++) g += dh[(size_t)r * H + k];
        n->b1[k] -= n->lr * g;
    }
    return loss / B;
}

static int train(Net *n, const char *args) {
    int steps, batch;
    if (sscanf(args, "%d %d", &steps, &batch) != 2 || steps <= 0 || batch != n->batch) {
        reply("error train needs 'train STEPS %d', got 'train %s'", n->batch, args);
        return -1;
    }
    int32_t *idx = alloc((size_t)steps * batch, sizeof(int32_t));
    if (fread(idx, sizeof(int32_t), (size_t)steps * batch, stdin) != (size_t)steps * batch) {
        reply("error stdin ended inside the batch indices");
        free(idx);
        return -1;
    }
    for (size_t i = 0; i < (size_t)steps * batch; i++)
        if (idx[i] < 0 || idx[i] >= n->rows) {
            reply("error batch index %d is outside 0..%d", idx[i], n->rows - 1);
            free(idx);
            return -1;
        }
    float *x = alloc((size_t)batch * n->features, sizeof(float));
    float *h = alloc((size_t)batch * n->hidden, sizeof(float));
    float *dh = alloc((size_t)batch * n->hidden, sizeof(float));
    float *p = alloc((size_t)batch * n->classes, sizeof(float));
    double total = 0;
    for (int s = 0; s < steps; s++) total += step(n, idx + (size_t)s * batch, x, h, p, dh);
    free(idx), free(x), free(h), free(dh), free(p);
    reply("loss %.9g", total / steps); /* 9 digits: a float32 read back exactly */
    return 0;
}

static int predict(Net *n, const char *args) {
    char path[LINE_BYTES];
    int rows;
    if (sscanf(args, "%8191s %d", path, &rows) != 2 || rows < 0) {
        reply("error predict needs 'predict FILE ROWS', got 'predict %s'", args);
        return -1;
    }
    if (strcmp(path, n->predict_path) || rows != n->predict_rows) {
        free(n->predict_x);
        n->predict_x = alloc((size_t)rows * n->features, sizeof(float));
        if (read_file(NULL, path, n->predict_x, sizeof(float), (size_t)rows * n->features))
            return -1;
        snprintf(n->predict_path, sizeof n->predict_path, "%s", path);
        n->predict_rows = rows;
    }
    int32_t *ids = alloc(rows, sizeof(int32_t));
    float *h = alloc(n->hidden, sizeof(float)), *out = alloc(n->classes, sizeof(float));
    for (int r = 0; r < rows; r++) {
        affine(n->predict_x + (size_t)r * n->features, n->W1, n->b1, h, 1, n->features,
               n->hidden);
        for (int k = 0; k < n->hidden; k++) h[k] = h[k] > 0 ? h[k] : 0;
        affine(h, n->W2, n->b2, out, 1, n->hidden, n->classes);
        int best = 0;
        for (int j = 1; j < n->classes; j++) best = out[j] > out[best] ? j : best;
        ids[r] = best;
    }
    printf("ids %d\n", rows);
    fwrite(ids, sizeof(int32_t), rows, stdout);
    fflush(stdout);
    free(ids), free(h), free(out);
    return 0;
}

static void params(const Net *n) {
    size_t F = n->features, H = n->hidden, C = n->classes;
    printf("params\n");
    fwrite(n->W1, sizeof(float), F * H, stdout);
    fwrite(n->b1, sizeof(float), H, stdout);
    fwrite(n->W2, sizeof(float), H * C, stdout);
    fwrite(n->b2, sizeof(float), C, stdout);
    fflush(stdout);
}

int main(void) {
    static char line[LINE_BYTES];
    Net net = {0};
    int ready = 0;
    while (fgets(line, sizeof line, stdin)) { /* end of file: the harness is gone; exit */
        line[strcspn(line, "\n")] = '\0';
        char *args = strchr(line, ' ');
        args = args ? (*args = '\0', args + 1) : line + strlen(line);
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
    return 0;
}
