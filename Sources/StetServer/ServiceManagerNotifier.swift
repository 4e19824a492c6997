public import Foundation

/// Tells the service manager how `stet run` is doing, in systemd's notification protocol
/// (sd_notify(3)), written to `$NOTIFY_SOCKET` directly: one AF_UNIX datagram per message
/// (`READY=1`, `WATCHDOG=1`, `STOPPING=1`).
///
/// Everything it takes from the environment is checked first, and a bad value is an error that
/// names it: the socket is an absolute path or an abstract name (`@…`) that fits a socket address
/// (107 bytes), `WATCHDOG_USEC` is a positive number of microseconds, and `WATCHDOG_PID`, when
/// set, must be this process for the watchdog to be this process's. It then removes the three
/// variables from the environment, so that nothing Stet starts (restic, probes, notifiers) speaks
/// for Stet.
///
/// A send never blocks: a manager that does not read costs a failed send, not a stuck loop.
public final class ServiceManagerNotifier: @unchecked Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// The longest socket path a `sockaddr_un` holds, without its terminating zero.
    public static let maximumPathBytes = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    /// How often `WATCHDOG=1` is due: half of `WATCHDOG_USEC`, kept between 50 ms and an hour.
    /// nil when no watchdog watches this process.
    public let watchdogInterval: Double?

    private let descriptor: Int32
    private var address: sockaddr_un
    private let addressLength: socklen_t
    private let lock = NSLock()

    /// nil when `NOTIFY_SOCKET` is unset or empty (not run by a service manager that listens).
    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment, pid: Int32 = getpid(), clear: Bool = true
    ) throws -> ServiceManagerNotifier? {
        guard let socket = environment["NOTIFY_SOCKET"], !socket.isEmpty else { return nil }
        let interval = try watchdogInterval(environment, pid: pid)
        let notifier = try ServiceManagerNotifier(socket: socket, watchdogInterval: interval)
        if clear { for name in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] { unsetenv(name) } }
        return notifier
    }

    /// Half of `WATCHDOG_USEC` in seconds, nil when there is none or it watches another process.
    static func watchdogInterval(_ environment: [String: String], pid: Int32) throws -> Double? {
        guard let text = environment["WATCHDOG_USEC"], !text.isEmpty else { return nil }
        guard text.utf8.count <= 20, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let usec = UInt64(text), usec > 0 else {
            throw Failure(description: "WATCHDOG_USEC=\(text.prefix(40)): expected a positive whole number of microseconds")
        }
        if let owner = environment["WATCHDOG_PID"], !owner.isEmpty {
            guard owner.utf8.count <= 10, let ownerPid = Int32(owner), ownerPid > 0 else {
                throw Failure(description: "WATCHDOG_PID=\(owner.prefix(40)): expected a process id")
            }
            guard ownerPid == pid else { return nil }
        }
        return min(max(Double(usec) / 2_000_000, 0.05), 3600)
    }

    init(socket: String, watchdogInterval: Double?) throws {
        var bytes = Array(socket.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        guard abstract || bytes.first == UInt8(ascii: "/"), bytes.count <= Self.maximumPathBytes, bytes.count > 1,
            !bytes.contains(0)
        else {
            throw Failure(description: "NOTIFY_SOCKET=\(socket.prefix(200)): expected an absolute socket path or an abstract "
                + "socket name starting with '@', of at most \(Self.maximumPathBytes) bytes")
        }
        // An abstract name starts with a zero byte and has no terminating one.
        if abstract { bytes[0] = 0 }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { path in
            for (index, byte) in bytes.enumerated() { path[index] = byte }
        }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path) ?? 2
        self.address = address
        addressLength = socklen_t(pathOffset + bytes.count + (abstract ? 0 : 1))
        descriptor = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else {
            throw Failure(description: "NOTIFY_SOCKET=\(socket): cannot make a socket: \(String(cString: strerror(errno)))")
        }
        self.watchdogInterval = watchdogInterval
    }

    deinit { close(descriptor) }

    /// Sends `message` (lines of `NAME=value`) in one datagram.
    public func send(_ message: String) throws {
        let bytes = Array(message.utf8)
        let (sent, error) = lock.withLock {
            let sent = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { target in
                    sendto(descriptor, bytes, bytes.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT), target, addressLength)
                }
            }
            return (sent, errno)
        }
        guard sent == bytes.count else {
            let reason = sent < 0 ? String(cString: strerror(error)) : "sent \(sent) of \(bytes.count) bytes"
            throw Failure(description: "cannot tell the service manager \(message.split(separator: "\n").joined(separator: ", ")): \(reason)")
        }
    }
}
