/*
 * exit-fields: the truth for tests of what the agent derives from exit records. A minimal
 * taskstats exit listener on a raw netlink socket (no libnl, none of the agent's code) that reads
 * struct taskstats through the kernel's own header (<linux/taskstats.h>, copying min(payload,
 * sizeof) so that a newer kernel's longer struct is fine) and prints one line per record:
 *
 *   AGG PID TGID FLAG ETIME_US TGETIME_US RUN_VIRTUAL_NS HIWATER_RSS_KB CPU_DELAY_NS UTIME_US STIME_US COMM
 *
 * AGG is "pid" (one thread's record) or "tgid" (the group record that follows a multi-threaded
 * process's last thread). Line-buffered; "ready" on stderr once registered; ends on SIGTERM.
 *
 * usage: exit-fields CPULIST
 */
#include <errno.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/taskstats.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

#define NLA_DATA(na) ((void *)((char *)(na) + NLA_HDRLEN))
#define GENL_DATA(nh) ((char *)NLMSG_DATA(nh) + GENL_HDRLEN)

static int send_cmd(int fd, uint16_t type, uint8_t cmd, uint16_t attr, const void *data, int len) {
  char buf[512];
  memset(buf, 0, sizeof buf);
  struct nlmsghdr *nh = (struct nlmsghdr *)buf;
  nh->nlmsg_type = type;
  nh->nlmsg_flags = NLM_F_REQUEST;
  nh->nlmsg_seq = 1;
  struct genlmsghdr *gh = NLMSG_DATA(nh);
  gh->cmd = cmd;
  gh->version = 1;
  struct nlattr *na = (struct nlattr *)GENL_DATA(nh);
  na->nla_type = attr;
  na->nla_len = NLA_HDRLEN + len;
  memcpy(NLA_DATA(na), data, len);
  nh->nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN) + NLA_ALIGN(na->nla_len);
  return send(fd, buf, nh->nlmsg_len, 0) < 0 ? -1 : 0;
}

static void print_stats(const char *agg, const struct nlattr *stats) {
  struct taskstats t;
  memset(&t, 0, sizeof t);
  size_t len = stats->nla_len - NLA_HDRLEN;
  memcpy(&t, NLA_DATA(stats), len < sizeof t ? len : sizeof t);
  char comm[TS_COMM_LEN + 1];
  memcpy(comm, t.ac_comm, TS_COMM_LEN);
  comm[TS_COMM_LEN] = 0;
  for (char *c = comm; *c; c++) if (*c == ' ' || *c == '\n') *c = '_';
  printf("%s %u %u %u %llu %llu %llu %llu %llu %llu %llu %s\n", agg, t.ac_pid, t.ac_tgid, (unsigned)t.ac_flag, (unsigned long long)t.ac_etime,
         (unsigned long long)t.ac_tgetime, (unsigned long long)t.cpu_run_virtual_total, (unsigned long long)t.hiwater_rss,
         (unsigned long long)t.cpu_delay_total, (unsigned long long)t.ac_utime, (unsigned long long)t.ac_stime, comm[0] ? comm : "-");
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: exit-fields CPULIST\n"); return 2; }
  setvbuf(stdout, NULL, _IOLBF, 0);
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
  if (fd < 0) { perror("socket"); return 1; }
  int rcvbuf = 16 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
  struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) { perror("bind"); return 1; }
  if (send_cmd(fd, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, CTRL_ATTR_FAMILY_NAME, TASKSTATS_GENL_NAME, strlen(TASKSTATS_GENL_NAME) + 1) < 0) { perror("send"); return 1; }
  static char buf[65536];
  int n = recv(fd, buf, sizeof buf, 0);
  struct nlmsghdr *nh = (struct nlmsghdr *)buf;
  if (n < 0 || nh->nlmsg_type == NLMSG_ERROR) { fprintf(stderr, "resolve failed\n"); return 1; }
  uint16_t family = 0;
  struct nlattr *na = (struct nlattr *)GENL_DATA(nh);
  int rem = nh->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
  while (rem >= NLA_HDRLEN && na->nla_len >= NLA_HDRLEN) {
    if (na->nla_type == CTRL_ATTR_FAMILY_ID) family = *(uint16_t *)NLA_DATA(na);
    rem -= NLA_ALIGN(na->nla_len);
    na = (struct nlattr *)((char *)na + NLA_ALIGN(na->nla_len));
  }
  if (!family) { fprintf(stderr, "no TASKSTATS family\n"); return 1; }
  if (send_cmd(fd, family, TASKSTATS_CMD_GET, TASKSTATS_CMD_ATTR_REGISTER_CPUMASK, argv[1], strlen(argv[1]) + 1) < 0) { perror("register"); return 1; }
  struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 };
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sigaction sa_term = { .sa_handler = on_term };
  sigaction(SIGTERM, &sa_term, NULL);
  fprintf(stderr, "ready\n");
  long enobufs = 0;
  while (!stop) {
    n = recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == ENOBUFS) { enobufs++; fprintf(stderr, "ENOBUFS\n"); }
      continue;
    }
    for (nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (unsigned)n); nh = NLMSG_NEXT(nh, n)) {
      if (nh->nlmsg_type != family) continue;
      na = (struct nlattr *)GENL_DATA(nh);
      rem = nh->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
      while (rem >= NLA_HDRLEN && na->nla_len >= NLA_HDRLEN) {
        if (na->nla_type == TASKSTATS_TYPE_AGGR_PID || na->nla_type == TASKSTATS_TYPE_AGGR_TGID) {
          /* nest: { PID or TGID (u32), STATS } */
          struct nlattr *inner = (struct nlattr *)NLA_DATA(na);
          int irem = na->nla_len - NLA_HDRLEN;
          while (irem >= NLA_HDRLEN && inner->nla_len >= NLA_HDRLEN) {
            if (inner->nla_type == TASKSTATS_TYPE_STATS) print_stats(na->nla_type == TASKSTATS_TYPE_AGGR_PID ? "pid" : "tgid", inner);
            irem -= NLA_ALIGN(inner->nla_len);
            inner = (struct nlattr *)((char *)inner + NLA_ALIGN(inner->nla_len));
          }
        }
        rem -= NLA_ALIGN(na->nla_len);
        na = (struct nlattr *)((char *)na + NLA_ALIGN(na->nla_len));
      }
    }
  }
  fprintf(stderr, "enobufs %ld\n", enobufs);
  return 0;
}
