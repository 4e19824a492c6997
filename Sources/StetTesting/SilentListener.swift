public import Foundation

/// A TCP listener on 127.0.0.1 that accepts every connection and never answers: a webhook, a
/// backup server or a health endpoint that hangs. `stop()` closes it and every connection.
public final class SilentListener: @unchecked Sendable {
    public let port: Int
    private let fd: Int32
    private let lock = NSLock()
    private var connections: [Int32] = []
    private var stopped = false

    public init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && listen(fd, 512) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard fd >= 0, bound else { throw TestFailure("cannot listen on 127.0.0.1: \(String(cString: strerror(errno)))") }
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in
            let fd = self.fd
            while true {
                let client = accept(fd, nil, nil)
                let keep = lock.withLock { () -> Bool in
                    guard !stopped else { return false }
                    if client >= 0 { connections.append(client) }
                    return true
                }
                if !keep {
                    if client >= 0 { close(client) }
                    return
                }
                if client < 0 { usleep(10_000) }
            }
        }
        thread.start()
    }

    /// Connections accepted so far (each one left waiting).
    public var accepted: Int { lock.withLock { connections.count } }

    public func stop() {
        let open = lock.withLock { () -> [Int32] in
            guard !stopped else { return [] }
            stopped = true
            defer { connections = [] }
            return connections
        }
        open.forEach { close($0) }
        // Wakes the accepting thread, which sees `stopped` and leaves; then the socket goes.
        shutdown(fd, Int32(SHUT_RDWR))
    }

    deinit {
        stop()
        close(fd)
    }
}

extension Samples {
    /// `count` monitors (`hostile-1` …) whose HTTP probes go to `port` every 5 s with a 5 s
    /// timeout; with `notify`, each fires at its first failure and alerts that notifier.
    public static func silentMonitors(_ count: Int, port: Int, notify: String? = nil) -> String {
        (1...max(1, count)).map { index in
            """
            apiVersion: stet/v1
            kind: Monitor
            metadata: {name: hostile-\(index)}
            spec:
              probe:
                http: {url: "http://127.0.0.1:\(port)/"}
              interval: 5s
              timeout: 5s
            \(notify.map { "  for: 0s\n  notify: [\($0)]\n" } ?? "")
            """
        }.joined(separator: "---\n")
    }
}
