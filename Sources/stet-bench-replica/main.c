// stet-bench-replica: the benchmarks' replica. An HTTP server on 127.0.0.1:$PORT that answers
// 200 "ok" to every connection, one at a time, on one thread.
//
// It is written in C so that what a benchmark measures from a kill is Stet's work, not the
// replica's own death: a process that maps the Swift runtime and Foundation takes 1.5 to 2 ms
// to be torn down after SIGKILL on this project's test machines, a small C program about 0.2 ms.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    const char *text = getenv("PORT");
    char *end = NULL;
    errno = 0;
    long port = text ? strtol(text, &end, 10) : 0;
    if (!text || *text == '\0' || *end != '\0' || errno != 0 || port < 1 || port > 65535) {
        fprintf(stderr, "stet-bench-replica: PORT must be a number from 1 to 65535\n");
        return 2;
    }
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int yes = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    struct sockaddr_in address;
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_port = htons((unsigned short)port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 64) != 0) {
        fprintf(stderr, "stet-bench-replica: cannot listen on %ld: %s\n", port, strerror(errno));
        return 1;
    }
    static const char response[] = "HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    char request[4096];
    for (;;) {
        int client = accept(listener, NULL, NULL);
        if (client < 0) continue;
        (void)recv(client, request, sizeof request, 0);
        (void)send(client, response, sizeof response - 1, MSG_NOSIGNAL);
        close(client);
    }
}
