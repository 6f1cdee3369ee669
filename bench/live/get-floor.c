// The floor of a live sweep, in C: list /proc (getdents64), then a GET by TGID of every process,
// BATCH requests per send(), one recv() per reply, nothing parsed. Prints the CPU per process of
// the GETs and of the listing (user + system, microseconds), averaged over ROUNDS sweeps.
// usage: get-floor ROUNDS BATCH   (root: TASKSTATS_CMD_GET needs CAP_NET_ADMIN)
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <linux/netlink.h>
#include <linux/genetlink.h>
#include <linux/taskstats.h>
static int fam;
static int resolve(int fd) {
  struct { struct nlmsghdr n; struct genlmsghdr g; char buf[256]; } req = {0};
  req.n.nlmsg_type = GENL_ID_CTRL; req.n.nlmsg_flags = NLM_F_REQUEST; req.n.nlmsg_seq = 1;
  req.g.cmd = CTRL_CMD_GETFAMILY; req.g.version = 1;
  struct nlattr *na = (struct nlattr *)req.buf; na->nla_type = CTRL_ATTR_FAMILY_NAME;
  strcpy((char *)(na + 1), "TASKSTATS"); na->nla_len = NLA_HDRLEN + 10;
  req.n.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN) + NLA_ALIGN(na->nla_len);
  send(fd, &req, req.n.nlmsg_len, 0);
  char r[4096]; int n = recv(fd, r, sizeof r, 0);
  struct nlmsghdr *h = (void *)r; struct nlattr *a = (void *)((char *)NLMSG_DATA(h) + GENL_HDRLEN);
  int len = h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
  while (len > 0) { if (a->nla_type == CTRL_ATTR_FAMILY_ID) return *(unsigned short *)(a + 1); len -= NLA_ALIGN(a->nla_len); a = (void *)((char *)a + NLA_ALIGN(a->nla_len)); }
  (void)n; return -1;
}
static double cpu_us(void) {
  struct rusage u; getrusage(RUSAGE_SELF, &u);
  return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e6 + u.ru_utime.tv_usec + u.ru_stime.tv_usec;
}
static int *pids; static int np;
static void list_proc(void) {
  static char buf[1 << 17];
  np = 0;
  int fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC); long n;
  while ((n = getdents64(fd, buf, sizeof buf)) > 0)
    for (long o = 0; o < n;) {
      struct dirent64 *d = (void *)(buf + o);
      if (d->d_name[0] >= '0' && d->d_name[0] <= '9' && np < 1000000) pids[np++] = atoi(d->d_name);
      o += d->d_reclen;
    }
  close(fd);
}
int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: get-floor ROUNDS BATCH\n"); return 2; }
  int rounds = atoi(argv[1]); int batch = atoi(argv[2]);
  pids = malloc(sizeof(int) * 1000000);
  double l0 = cpu_us();
  for (int k = 0; k < rounds; k++) list_proc();
  double listUs = (cpu_us() - l0) / rounds / np;
  int fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_GENERIC);
  struct sockaddr_nl sa = { .nl_family = AF_NETLINK }; bind(fd, (void *)&sa, sizeof sa);
  int rb = 8 << 20; setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rb, sizeof rb);
  fam = resolve(fd);
  char *out = malloc(28 * batch); char r[4096]; unsigned seq = 10;
  struct rusage u0, u1; getrusage(RUSAGE_SELF, &u0);
  long got = 0;
  for (int k = 0; k < rounds; k++)
    for (int i = 0; i < np; i += batch) {
      int c = np - i < batch ? np - i : batch;
      for (int j = 0; j < c; j++) {
        unsigned char *m = (unsigned char *)out + 28 * j; memset(m, 0, 28);
        *(unsigned *)m = 28; *(unsigned short *)(m + 4) = fam; *(unsigned short *)(m + 6) = NLM_F_REQUEST; *(unsigned *)(m + 8) = seq++;
        m[16] = TASKSTATS_CMD_GET; m[17] = 1; *(unsigned short *)(m + 20) = 8; *(unsigned short *)(m + 22) = TASKSTATS_CMD_ATTR_TGID; *(unsigned *)(m + 24) = pids[i + j];
      }
      send(fd, out, 28 * c, 0);
      for (int j = 0; j < c; j++) { if (recv(fd, r, sizeof r, MSG_DONTWAIT) > 0) got++; }
    }
  getrusage(RUSAGE_SELF, &u1);
  double us = (u1.ru_utime.tv_sec - u0.ru_utime.tv_sec) * 1e6 + (u1.ru_utime.tv_usec - u0.ru_utime.tv_usec) + (u1.ru_stime.tv_sec - u0.ru_stime.tv_sec) * 1e6 + (u1.ru_stime.tv_usec - u0.ru_stime.tv_usec);
  double sys = (u1.ru_stime.tv_sec - u0.ru_stime.tv_sec) * 1e6 + (u1.ru_stime.tv_usec - u0.ru_stime.tv_usec);
  printf("%.3f %.3f %ld %.3f %d\n", us / (rounds * (double)np), sys / (rounds * (double)np), got / rounds, listUs, np);
  return 0;
}
