/*
 * exit-truth: the kernel's exit records, read by code that shares nothing with the agent's
 * parser: a raw generic netlink socket (no libnl, no koffi) and the kernel's own struct taskstats
 * from <linux/taskstats.h> (the payload copied into it, at most sizeof: the fields through the
 * header's version, at the kernel's offsets). For tests of the agent's exit events.
 *
 * usage: exit-truth CPULIST PPID...
 *   prints "ready" on stderr once registered, then one JSON line on stdout per record of a task
 *   whose ac_ppid is one of PPID (and the thread group record that follows such a task's record
 *   in its datagram), until SIGTERM.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/taskstats.h>
#include <signal.h>
#include <stddef.h>
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

static void print(const char *aggregate, uint32_t id, const struct nlattr *stats) {
  struct taskstats t;
  memset(&t, 0, sizeof t);
  size_t len = stats->nla_len - NLA_HDRLEN;
  memcpy(&t, NLA_DATA(stats), len < sizeof t ? len : sizeof t);
  char comm[TS_COMM_LEN + 1];
  memcpy(comm, t.ac_comm, TS_COMM_LEN);
  comm[TS_COMM_LEN] = 0;
  for (char *c = comm; *c; c++)
    if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20) *c = '_';
  printf("{\"aggregate\":\"%s\",\"id\":%u,\"version\":%u,\"pid\":%u,\"tgid\":%u,\"ppid\":%u,\"uid\":%u,\"gid\":%u,\"comm\":\"%s\","
         "\"exitcode\":%u,\"flag\":%u,\"btime\":%u,\"etime_us\":%llu,\"utime_us\":%llu,\"stime_us\":%llu,"
         "\"run_virtual_ns\":%llu,\"read_char\":%llu,\"write_char\":%llu,\"read_bytes\":%llu,\"write_bytes\":%llu,"
         "\"nvcsw\":%llu,\"nivcsw\":%llu,\"minflt\":%llu,\"majflt\":%llu,\"hiwater_rss_kb\":%llu,\"hiwater_vm_kb\":%llu,"
         "\"cpu_count\":%llu,\"cpu_delay_ns\":%llu}\n",
         aggregate, id, t.version, t.ac_pid, t.ac_tgid, t.ac_ppid, t.ac_uid, t.ac_gid, comm, t.ac_exitcode, t.ac_flag, t.ac_btime,
         (unsigned long long)t.ac_etime, (unsigned long long)t.ac_utime, (unsigned long long)t.ac_stime,
         (unsigned long long)t.cpu_run_virtual_total, (unsigned long long)t.read_char, (unsigned long long)t.write_char,
         (unsigned long long)t.read_bytes, (unsigned long long)t.write_bytes, (unsigned long long)t.nvcsw,
         (unsigned long long)t.nivcsw, (unsigned long long)t.ac_minflt, (unsigned long long)t.ac_majflt,
         (unsigned long long)t.hiwater_rss, (unsigned long long)t.hiwater_vm, (unsigned long long)t.cpu_count,
         (unsigned long long)t.cpu_delay_total);
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: exit-truth CPULIST PPID...\n"); return 2; }
  const char *cpus = argv[1];
  int nppids = argc - 2;
  uint32_t ppids[64];
  for (int i = 0; i < nppids && i < 64; i++) ppids[i] = (uint32_t)atoi(argv[2 + i]);

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
  if (send_cmd(fd, family, TASKSTATS_CMD_GET, TASKSTATS_CMD_ATTR_REGISTER_CPUMASK, cpus, strlen(cpus) + 1) < 0) { perror("register"); return 1; }
  struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 };
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sigaction sa_term = { .sa_handler = on_term };
  sigaction(SIGTERM, &sa_term, NULL);
  fprintf(stderr, "ready\n");
  fflush(stderr);

  long enobufs = 0;
  while (!stop) {
    n = recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == ENOBUFS) enobufs++;
      continue;
    }
    for (nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (unsigned)n); nh = NLMSG_NEXT(nh, n)) {
      if (nh->nlmsg_type != family) continue;
      int matched = 0;
      na = (struct nlattr *)GENL_DATA(nh);
      rem = nh->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
      /* AGGR_PID { PID, STATS } then, for the last thread of a multi-threaded group, AGGR_TGID { TGID, STATS } */
      while (rem >= NLA_HDRLEN && na->nla_len >= NLA_HDRLEN) {
        if (na->nla_type == TASKSTATS_TYPE_AGGR_PID || na->nla_type == TASKSTATS_TYPE_AGGR_TGID) {
          struct nlattr *idattr = (struct nlattr *)NLA_DATA(na);
          struct nlattr *stats = (struct nlattr *)((char *)idattr + NLA_ALIGN(idattr->nla_len));
          uint32_t id = *(uint32_t *)NLA_DATA(idattr);
          if (stats->nla_type == TASKSTATS_TYPE_STATS) {
            if (na->nla_type == TASKSTATS_TYPE_AGGR_PID) {
              uint32_t ppid;
              memcpy(&ppid, (char *)NLA_DATA(stats) + offsetof(struct taskstats, ac_ppid), 4);
              for (int i = 0; i < nppids; i++) if (ppids[i] == ppid) matched = 1;
              if (matched) print("pid", id, stats);
            } else if (matched) {
              print("tgid", id, stats);
            }
          }
        }
        rem -= NLA_ALIGN(na->nla_len);
        na = (struct nlattr *)((char *)na + NLA_ALIGN(na->nla_len));
      }
    }
    fflush(stdout);
  }
  fprintf(stderr, "enobufs %ld\n", enobufs);
  return 0;
}
