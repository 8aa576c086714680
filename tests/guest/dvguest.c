/* dvguest: the test harness's helper inside the guest (static, busybox has no tcpdump).
 *
 *   dvguest tx IFACE COUNT SIZE          send COUNT raw frames (ethertype 0x88B5) carrying a
 *                                        sequence number and a byte pattern
 *   dvguest rx IFACE COUNT TIMEOUT_S     receive such frames; check every payload
 *   dvguest channels IFACE N             set N combined queues (what `ethtool -L` does)
 *   dvguest reflect IFACE COUNT TIMEOUT_S
 *                                        send back (addresses swapped, nothing else
 *                                        changed) the first COUNT measured IPv4/UDP frames
 *                                        it receives: dpdkvirtio's marker (bytes 42..45
 *                                        "DVM1") travels back, so the sender measures the
 *                                        round trip through the guest's virtio-net driver
 *
 * Frame: dst 02:00:00:00:00:02, src = IFACE's MAC, type 0x88B5, seq (4 bytes, big endian),
 * then byte i = (seq + i) & 0xff up to SIZE bytes. Traffic stays between the guest and the
 * vhost-user port of the test (raw L2, no IP). */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/ethtool.h>
#include <linux/if_packet.h>
#include <linux/sockios.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ETHERTYPE_DV 0x88B5

static int open_sock_proto(const char *ifname, int *ifindex, unsigned char *mac, int proto)
{
    int fd = socket(AF_PACKET, SOCK_RAW, htons(proto));
    if (fd < 0) { perror("socket"); exit(2); }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) { perror("SIOCGIFINDEX"); exit(2); }
    *ifindex = ifr.ifr_ifindex;
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) { perror("SIOCGIFHWADDR"); exit(2); }
    memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof(sll));
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(proto);
    sll.sll_ifindex = *ifindex;
    if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) { perror("bind"); exit(2); }
    int rcv = 16 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv));
    return fd;
}

static int open_sock(const char *ifname, int *ifindex, unsigned char *mac)
{
    return open_sock_proto(ifname, ifindex, mac, ETHERTYPE_DV);
}

static int do_tx(const char *ifname, long count, int size)
{
    int ifindex;
    unsigned char mac[6], buf[2048];
    if (size < 18 || size > (int)sizeof(buf)) { fprintf(stderr, "size 18..2048\n"); return 2; }
    int fd = open_sock(ifname, &ifindex, mac);
    struct sockaddr_ll to;
    memset(&to, 0, sizeof(to));
    to.sll_family = AF_PACKET;
    to.sll_ifindex = ifindex;
    to.sll_halen = 6;
    long sent = 0;
    for (long seq = 0; seq < count; seq++) {
        static const unsigned char dst[6] = {2, 0, 0, 0, 0, 2};
        memcpy(buf, dst, 6);
        memcpy(buf + 6, mac, 6);
        buf[12] = ETHERTYPE_DV >> 8; buf[13] = ETHERTYPE_DV & 0xff;
        uint32_t s = htonl((uint32_t)seq);
        memcpy(buf + 14, &s, 4);
        for (int i = 18; i < size; i++) buf[i] = (unsigned char)(seq + i);
        memcpy(to.sll_addr, dst, 6);
        while (sendto(fd, buf, size, 0, (struct sockaddr *)&to, sizeof(to)) < 0) {
            if (errno != ENOBUFS && errno != EAGAIN) { perror("sendto"); return 1; }
            usleep(100);
        }
        sent++;
    }
    printf("DVTX sent=%ld\n", sent);
    return 0;
}

static int do_rx(const char *ifname, long count, int timeout_s)
{
    int ifindex;
    unsigned char mac[6], buf[4096];
    int fd = open_sock(ifname, &ifindex, mac);
    long ok = 0, bad = 0, last = -1, ordered = 1;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    time_t end = time(NULL) + timeout_s;
    printf("DVRX listening\n");
    fflush(stdout);
    while (ok + bad < count && time(NULL) < end) {
        if (poll(&p, 1, 200) <= 0) continue;
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 18) { bad++; continue; }
        uint32_t s;
        memcpy(&s, buf + 14, 4);
        long seq = ntohl(s);
        int good = 1;
        for (ssize_t i = 18; i < n; i++)
            if (buf[i] != (unsigned char)(seq + i)) { good = 0; break; }
        if (good) ok++; else bad++;
        if (seq <= last) ordered = 0;
        last = seq;
    }
    printf("DVRX ok=%ld bad=%ld ordered=%ld last=%ld\n", ok, bad, ordered, last);
    return 0;
}

static int do_reflect(const char *ifname, long count, int timeout_s)
{
    int ifindex;
    unsigned char mac[6], buf[4096];
    int fd = open_sock_proto(ifname, &ifindex, mac, ETH_P_IP);
    long reflected = 0, other = 0, failed = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    struct sockaddr_ll to;
    memset(&to, 0, sizeof(to));
    to.sll_family = AF_PACKET;
    to.sll_ifindex = ifindex;
    to.sll_halen = 6;
    time_t end = time(NULL) + timeout_s;
    printf("DVREFLECT listening\n");
    fflush(stdout);
    while (reflected < count && time(NULL) < end) {
        if (poll(&p, 1, 200) <= 0) continue;
        struct sockaddr_ll from;
        socklen_t fromlen = sizeof(from);
        ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fromlen);
        if (n < 64 || from.sll_pkttype == PACKET_OUTGOING || buf[23] != 17
                || memcmp(buf + 42, "DVM1", 4) != 0) {
            other++;
            continue;
        }
        memcpy(buf, buf + 6, 6);            /* back to whoever sent it */
        memcpy(buf + 6, mac, 6);
        memcpy(to.sll_addr, buf, 6);
        int ok = 1;
        while (sendto(fd, buf, n, 0, (struct sockaddr *)&to, sizeof(to)) < 0) {
            if (errno != ENOBUFS && errno != EAGAIN) { perror("sendto"); ok = 0; break; }
            usleep(50);
        }
        if (ok) reflected++; else failed++;
    }
    printf("DVREFLECT reflected=%ld other=%ld failed=%ld\n", reflected, other, failed);
    return 0;
}

static int do_channels(const char *ifname, int n)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct ethtool_channels ch = {.cmd = ETHTOOL_GCHANNELS};
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    ifr.ifr_data = (void *)&ch;
    if (ioctl(fd, SIOCETHTOOL, &ifr) < 0) { perror("ETHTOOL_GCHANNELS"); return 1; }
    ch.cmd = ETHTOOL_SCHANNELS;
    ch.combined_count = n;
    if (ioctl(fd, SIOCETHTOOL, &ifr) < 0) { perror("ETHTOOL_SCHANNELS"); return 1; }
    printf("DVCH combined=%d max=%u\n", n, ch.max_combined);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 5 && !strcmp(argv[1], "tx")) return do_tx(argv[2], atol(argv[3]), atoi(argv[4]));
    if (argc >= 5 && !strcmp(argv[1], "rx")) return do_rx(argv[2], atol(argv[3]), atoi(argv[4]));
    if (argc >= 4 && !strcmp(argv[1], "channels")) return do_channels(argv[2], atoi(argv[3]));
    if (argc >= 5 && !strcmp(argv[1], "reflect"))
        return do_reflect(argv[2], atol(argv[3]), atoi(argv[4]));
    fprintf(stderr, "usage: dvguest tx IFACE COUNT SIZE | rx IFACE COUNT TIMEOUT_S | "
            "channels IFACE N | reflect IFACE COUNT TIMEOUT_S\n");
    return 2;
}
