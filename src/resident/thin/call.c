/*
 * The resident daemon's client in C (docs/resident.md "The C client"), run by cni-nft-client
 * (client.c) and by the plugins' C fronts (front.c). A Bun process costs ~5 ms to start, most of a
 * call the daemon serves; this one costs well under one. It does what src/resident/call.ts and
 * client.ts do, in the same order and with the same rules, and speaks src/resident/protocol.ts:
 *   frames [u32 big-endian length][u8 kind][payload]; request header JSON {v, plugin, env, cwd,
 *   umask}, then the stdin frame; answers refused | accepted, then result header {exitCode},
 *   stdout, stderr.
 * Whatever it does not serve it hands to cni-nft-plugins (exec, same argv), with the stdin it read
 * in a memfd and CNI_NFT_RESIDENT_HANDOFF telling it why (src/bin/invocation.ts):
 *   here  run the plugin in-process, do not try the daemon again;
 *   lost  the daemon accepted the call and ended before answering: print the CNI error (code
 *         999) and do not run it (the JSON of that error needs stdin's cniVersion: TS parses it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "call.h"

#define PROTOCOL_VERSION 1
#define MAX_FRAME_BYTES (16u << 20)
#define ANSWER_TIMEOUT_MS 5000

enum { REQUEST_HEADER = 1, STDIN_FRAME, REFUSED, ACCEPTED, RESULT_HEADER, STDOUT_FRAME, STDERR_FRAME };

extern char **environ;

struct buf {
  unsigned char *p;
  size_t len, cap;
};

static char **args;
static const char *plugins_path; /* cni-nft-plugins, what a call not served is handed to */
static struct buf in; /* stdin as read */
static int have_stdin;

/* Ends here: execs cni-nft-plugins with the stdin already read. */
__attribute__((noreturn)) static void hand_off(const char *handoff, const char *why) {
  if (why && getenv("CNI_NFT_DEBUG")) fprintf(stderr, "cni-nft: resident daemon not used: %s\n", why);
  if (have_stdin) {
    int fd = memfd_create("cni-nft-stdin", 0);
    size_t off = 0;
    while (fd >= 0 && off < in.len) {
      ssize_t w = write(fd, in.p + off, in.len - off);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) break;
      off += (size_t)w;
    }
    if (fd < 0 || off < in.len || lseek(fd, 0, SEEK_SET) != 0 || dup2(fd, 0) < 0) {
      fprintf(stderr, "cni-nft-client: cannot hand stdin over: %s\n", strerror(errno));
      exit(1);
    }
    if (fd != 0) close(fd);
  }
  setenv("CNI_NFT_RESIDENT_HANDOFF", handoff, 1);
  execv(plugins_path, args);
  fprintf(stderr, "cni-nft-client: %s: %s\n", plugins_path, strerror(errno));
  exit(1);
}

static void put(struct buf *b, const void *s, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    unsigned char *p = realloc(b->p, cap);
    if (!p) hand_off("here", "out of memory");
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

static void puts_(struct buf *b, const char *s) { put(b, s, strlen(s)); }

/* Length of the valid UTF-8 sequence at s (1-4), or 0: the bytes Bun turns into one U+FFFD. */
static size_t utf8_len(const unsigned char *s, size_t n, size_t *bad) {
  unsigned char c = s[0];
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) need = 1;
  else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F; /* no surrogates */
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    *bad = 1;
    return 0;
  }
  /* The maximal subpart (WHATWG decoder): a lead byte and the continuation bytes that fit. */
  size_t i = 1;
  for (; i <= need; i++) {
    if (i >= n || s[i] < lo || s[i] > hi) {
      *bad = i;
      return 0;
    }
    lo = 0x80;
    hi = 0xBF;
  }
  return need + 1;
}

/* A JSON string as JSON.stringify writes it, of bytes decoded as UTF-8 with replacement. */
static void put_json_string(struct buf *b, const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  put(b, "\"", 1);
  for (size_t i = 0; i < n;) {
    unsigned char c = s[i];
    if (c == '"' || c == '\\') {
      put(b, "\\", 1);
      put(b, &s[i++], 1);
    } else if (c < 0x20) {
      const char *short_form = c == '\b' ? "\\b" : c == '\f' ? "\\f" : c == '\n' ? "\\n" : c == '\r' ? "\\r"
                               : c == '\t' ? "\\t" : NULL;
      char esc[8];
      if (!short_form) snprintf(esc, sizeof esc, "\\u%04x", c);
      puts_(b, short_form ? short_form : esc);
      i++;
    } else {
      size_t bad = 0, len = utf8_len(s + i, n - i, &bad);
      if (len) put(b, s + i, len);
      else puts_(b, "\xEF\xBF\xBD");
      i += len ? len : bad;
    }
  }
  put(b, "\"", 1);
}

static void put_frame(struct buf *b, int kind, const unsigned char *p, size_t n) {
  uint32_t len = (uint32_t)n + 1;
  unsigned char head[5] = {len >> 24, len >> 16, len >> 8, len, (unsigned char)kind};
  put(b, head, 5);
  put(b, p, n);
}

/* client.ts residentSocket: only a root-owned socket in a directory only root can write to. */
static const char *resident_socket(void) {
  const char *off = getenv("CNI_NFT_RESIDENT");
  if (off && strcmp(off, "off") == 0) return NULL;
  const char *path = getenv("CNI_NFT_RESIDENT_SOCKET");
  if (!path || !*path) path = DEFAULT_SOCKET;
  char dir[PATH_MAX];
  const char *slash = strrchr(path, '/');
  if (!slash) snprintf(dir, sizeof dir, ".");
  else if (slash == path) snprintf(dir, sizeof dir, "/");
  else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  struct stat st;
  if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & 077)) return NULL;
  if (lstat(path, &st) != 0 || !S_ISSOCK(st.st_mode) || st.st_uid != 0) return NULL;
  return path;
}

static long long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void write_all(int fd, const unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= (size_t)w;
  }
}

int resident_call(int argc, char **argv, const char *plugin, const char *plugins) {
  args = argv;
  plugins_path = plugins;
  const char *verb = getenv("CNI_COMMAND");
  static const char *const served[] = {"ADD", "DEL", "CHECK", "GC", "STATUS"};
  int serve = 0;
  for (size_t i = 0; verb && i < sizeof served / sizeof *served; i++) serve |= strcmp(verb, served[i]) == 0;
  const char *sock = argc == 1 && serve && plugin && *plugin ? resident_socket() : NULL;
  if (!sock) hand_off("here", NULL); /* stdin untouched: the plugin reads it */

  have_stdin = 1;
  for (;;) {
    unsigned char chunk[65536];
    ssize_t r = read(0, chunk, sizeof chunk);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) hand_off("here", strerror(errno)); /* a non-blocking stdin: the plugin's path copes */
    if (r == 0) break;
    put(&in, chunk, (size_t)r);
  }
  char *cwd = getcwd(NULL, 0);
  if (!cwd) hand_off("here", strerror(errno));
  mode_t mask = umask(0);
  umask(mask);

  struct buf header = {0}, req = {0};
  char num[32];
  snprintf(num, sizeof num, "{\"v\":%d,\"plugin\":", PROTOCOL_VERSION);
  puts_(&header, num);
  put_json_string(&header, plugin, strlen(plugin));
  puts_(&header, ",\"env\":{");
  int first = 1;
  for (char **e = environ; *e; e++) {
    const char *eq = strchr(*e, '=');
    if (!eq || eq == *e) continue;
    size_t klen = (size_t)(eq - *e);
    /* Removed before the TS client builds its header (src/bin/invocation.ts). */
    if ((klen == 14 && !strncmp(*e, "CNI_NFT_PLUGIN", 14)) ||
        (klen == 24 && !strncmp(*e, "CNI_NFT_RESIDENT_HANDOFF", 24)))
      continue;
    if (!first) put(&header, ",", 1);
    first = 0;
    put_json_string(&header, *e, klen);
    put(&header, ":", 1);
    put_json_string(&header, eq + 1, strlen(eq + 1));
  }
  puts_(&header, "},\"cwd\":");
  put_json_string(&header, cwd, strlen(cwd));
  snprintf(num, sizeof num, ",\"umask\":%u}", (unsigned)mask);
  puts_(&header, num);
  if (header.len + 1 > MAX_FRAME_BYTES || in.len + 1 > MAX_FRAME_BYTES) hand_off("here", "frame too large");
  put_frame(&req, REQUEST_HEADER, header.p, header.len);
  put_frame(&req, STDIN_FRAME, in.p, in.len);

  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(sock) >= sizeof addr.sun_path) hand_off("here", "socket path too long");
  strcpy(addr.sun_path, sock);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) hand_off("here", strerror(errno));
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0 && errno != EINPROGRESS && errno != EAGAIN)
    hand_off("here", strerror(errno)); /* a stale socket: connection refused */

  /* Until `accepted`, anything wrong means the daemon did nothing: run it here. After, never. */
  long long deadline = now_ms() + ANSWER_TIMEOUT_MS;
  int accepted = 0, have_result = 0, exit_code = 0;
  size_t sent = 0;
  struct buf ans = {0}, out = {0};
#define FAIL(why) (accepted ? hand_off("lost", why) : hand_off("here", why))
  for (;;) {
    struct pollfd p = {.fd = fd, .events = POLLIN | (sent < req.len ? POLLOUT : 0)};
    long long left = deadline - now_ms();
    int ready = poll(&p, 1, accepted ? -1 : left > 0 ? (int)left : 0);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) FAIL(strerror(errno));
    if (ready == 0) hand_off("here", "no answer in time");
    if ((p.revents & POLLOUT) && sent < req.len) {
      ssize_t w = send(fd, req.p + sent, req.len - sent, MSG_NOSIGNAL);
      if (w < 0 && errno != EAGAIN && errno != EINTR) FAIL(strerror(errno));
      if (w > 0) sent += (size_t)w;
    }
    if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
    unsigned char chunk[65536];
    ssize_t r = read(fd, chunk, sizeof chunk);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (r < 0) FAIL(strerror(errno));
    if (r == 0) FAIL("connection closed");
    put(&ans, chunk, (size_t)r);
    size_t off = 0;
    while (ans.len - off >= 4) {
      const unsigned char *f = ans.p + off;
      uint32_t len = (uint32_t)f[0] << 24 | (uint32_t)f[1] << 16 | (uint32_t)f[2] << 8 | f[3];
      if (len < 1 || len > MAX_FRAME_BYTES) FAIL("malformed answer");
      if (ans.len - off - 4 < len) break;
      int kind = f[4];
      const unsigned char *payload = f + 5;
      size_t n = len - 1;
      off += 4 + len;
      if (!accepted) {
        if (kind == REFUSED) {
          char why[512];
          snprintf(why, sizeof why, "%.*s", (int)(n < 500 ? n : 500), payload);
          hand_off("here", why);
        }
        if (kind != ACCEPTED) hand_off("here", "unexpected frame");
        accepted = 1;
      } else if (kind == RESULT_HEADER && !have_result) {
        /* The daemon writes JSON.stringify({exitCode}): {"exitCode":N}. */
        char text[64];
        int used = 0;
        snprintf(text, sizeof text, "%.*s", (int)(n < 63 ? n : 63), payload);
        if (sscanf(text, "{\"exitCode\":%d}%n", &exit_code, &used) != 1 || used != (int)n)
          FAIL("malformed result");
        have_result = 1;
      } else if (kind == STDOUT_FRAME && have_result && !out.p) {
        put(&out, payload, n);
        if (!out.p) out.p = (unsigned char *)""; /* an empty stdout, received */
      } else if (kind == STDERR_FRAME && out.p) {
        write_all(2, payload, n);
        write_all(1, out.p, out.len);
        return exit_code;
      } else FAIL("unexpected frame");
    }
    memmove(ans.p, ans.p + off, ans.len - off);
    ans.len -= off;
  }
}
