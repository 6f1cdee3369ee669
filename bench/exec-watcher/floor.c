// The floor for the exec watcher benchmark: a minimal C exec watcher. It blocks in recv() on the
// proc connector (EXEC events only, Linux >= 6.6), and for each exec opens and reads
// /proc/PID/cgroup once (plus /proc/PID/exe and /proc/PID/cmdline with "details"), under
// SCHED_FIFO 1 like the agent's watcher thread. It runs for SECONDS (or until SIGTERM) and prints one JSON line:
// exec events, its own CPU time (schedstat), cgroup reads that found the process gone, and the
// delay from each exec (the event's kernel timestamp) to the end of its cgroup read.
// usage: floor SECONDS [details]
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static long long thread_cpu_ns(void) {
  char b[128];
  int fd = open("/proc/thread-self/schedstat", O_RDONLY);
  int n = fd < 0 ? 0 : (int)read(fd, b, sizeof b - 1);
  if (fd >= 0) close(fd);
  b[n > 0 ? n : 0] = 0;
  return atoll(b);
}

static volatile sig_atomic_t stopping;
static void on_term(int sig) { (void)sig; stopping = 1; }

static long long mono_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 5;
  int details = argc > 2 && strcmp(argv[2], "details") == 0;
  int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR);
  if (fd < 0) { perror("socket"); return 1; }
  int size = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
  struct sockaddr_nl addr = { .nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC };
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) { perror("bind"); return 1; }
  char req[NLMSG_HDRLEN + sizeof(struct cn_msg) + 8] = {0};
  struct nlmsghdr *h = (struct nlmsghdr *)req;
  struct cn_msg *cn = (struct cn_msg *)(req + NLMSG_HDRLEN);
  h->nlmsg_len = sizeof req;
  h->nlmsg_type = NLMSG_DONE;
  cn->id.idx = CN_IDX_PROC;
  cn->id.val = CN_VAL_PROC;
  cn->len = 8;
  unsigned *op = (unsigned *)cn->data;
  op[0] = PROC_CN_MCAST_LISTEN;
  op[1] = PROC_EVENT_EXEC; // struct proc_input: the event mask (Linux >= 6.6)
  if (send(fd, req, sizeof req, 0) < 0) { perror("send"); return 1; }
  struct timeval tv = { 0, 200000 };
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sched_param sp = { .sched_priority = 1 };
  int fifo = sched_setscheduler(0, SCHED_FIFO, &sp) == 0;
  struct sigaction sa = { .sa_handler = on_term }; // no SA_RESTART: recv() returns EINTR
  sigaction(SIGTERM, &sa, 0);
  fprintf(stderr, "ready\n");
  long long cpu0 = thread_cpu_ns(), t0 = mono_ns(), end = t0 + (long long)(seconds * 1e9);
  long events = 0, gone = 0;
  long long delay_sum = 0, delay_max = 0;
  long delay_over_500us = 0;
  char buf[8192], file[65536], path[64];
  while (!stopping && mono_ns() < end) {
    int n = (int)recv(fd, buf, sizeof buf, 0);
    if (n <= 0) continue;
    for (int off = 0; off + NLMSG_HDRLEN <= n;) {
      struct nlmsghdr *m = (struct nlmsghdr *)(buf + off);
      if (m->nlmsg_len < NLMSG_HDRLEN) break;
      struct proc_event *ev = (struct proc_event *)(buf + off + NLMSG_HDRLEN + sizeof(struct cn_msg));
      if (ev->what == PROC_EVENT_EXEC) {
        int tgid = ev->event_data.exec.process_tgid;
        events++;
        snprintf(path, sizeof path, "/proc/%d/cgroup", tgid);
        int f = open(path, O_RDONLY | O_CLOEXEC);
        if (f < 0 || read(f, file, sizeof file) <= 0) gone++;
        if (f >= 0) close(f);
        long long d = mono_ns() - (long long)ev->timestamp_ns;
        delay_sum += d;
        if (d > delay_max) delay_max = d;
        if (d > 500000) delay_over_500us++;
        if (details) {
          snprintf(path, sizeof path, "/proc/%d/exe", tgid);
          readlink(path, file, sizeof file);
          snprintf(path, sizeof path, "/proc/%d/cmdline", tgid);
          f = open(path, O_RDONLY | O_CLOEXEC);
          if (f >= 0) { read(f, file, 4096); close(f); }
        }
      }
      off += NLMSG_ALIGN(m->nlmsg_len);
    }
  }
  printf("{\"events\":%ld,\"cpu_ns\":%lld,\"gone\":%ld,\"fifo\":%d,\"delay_mean_ns\":%lld,\"delay_max_ns\":%lld,\"delay_over_500us\":%ld}\n",
         events, thread_cpu_ns() - cpu0, gone, fifo, events ? delay_sum / events : 0, delay_max, delay_over_500us);
  return 0;
}
