import Foundation
import StetServer
import Testing

/// `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID` come from outside: each is checked, and
/// a bad one is an error that names it.
@Suite struct ServiceManagerNotifierTests {
    static let longest = "/" + String(repeating: "s", count: ServiceManagerNotifier.maximumPathBytes - 1)

    @Test(arguments: [
        ("relative.sock", "NOTIFY_SOCKET=relative.sock: expected an absolute socket path"),
        ("@", "NOTIFY_SOCKET=@: expected"),
        ("/", "NOTIFY_SOCKET=/: expected"),
        ("vsock:2:1234", "NOTIFY_SOCKET=vsock:2:1234: expected"),
        (longest + "s", "of at most 107 bytes"),
    ])
    func aSocketThatIsNoUnixSocketAddressIsRefused(socket: String, message: String) {
        #expect {
            _ = try ServiceManagerNotifier.fromEnvironment(["NOTIFY_SOCKET": socket], pid: 100, clear: false)
        } throws: { "\($0)".contains(message) }
    }

    @Test func theLongestPathThatFitsIsTaken() throws {
        #expect(try ServiceManagerNotifier.fromEnvironment(["NOTIFY_SOCKET": Self.longest], pid: 100, clear: false) != nil)
        #expect(try ServiceManagerNotifier.fromEnvironment([:], pid: 100, clear: false) == nil)
        #expect(try ServiceManagerNotifier.fromEnvironment(["NOTIFY_SOCKET": ""], pid: 100, clear: false) == nil)
    }

    @Test(arguments: ["0", "-1", "soon", "1e6", "99999999999999999999999", " 100"])
    func aWatchdogTimeoutThatIsNoPositiveNumberIsRefused(value: String) {
        #expect {
            _ = try ServiceManagerNotifier.fromEnvironment(["NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": value], pid: 100, clear: false)
        } throws: { "\($0)".contains("WATCHDOG_USEC=\(value): expected a positive whole number of microseconds") }
    }

    @Test func theWatchdogIsToldEveryHalfTimeoutWhenItWatchesThisProcess() throws {
        func interval(_ environment: [String: String]) throws -> Double? {
            try ServiceManagerNotifier.fromEnvironment(environment.merging(["NOTIFY_SOCKET": "/run/n"]) { $1 }, pid: 100, clear: false)?
                .watchdogInterval
        }
        #expect(try interval(["WATCHDOG_USEC": "120000000"]) == 60)
        #expect(try interval(["WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "100"]) == 60)
        // Another process's watchdog (inherited from a parent) is not this one's.
        #expect(try interval(["WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "99"]) == nil)
        #expect(try interval([:]) == nil)
        // Kept between 50 ms and an hour: never a spinning loop, never a silent one.
        #expect(try interval(["WATCHDOG_USEC": "1"]) == 0.05)
        #expect(try interval(["WATCHDOG_USEC": "18446744073709551615"]) == 3600)
        #expect(throws: (any Error).self) { try interval(["WATCHDOG_USEC": "1000", "WATCHDOG_PID": "me"]) }
    }

    /// An abstract socket name (`@…`) is sent to with its leading zero byte and no trailing one.
    @Test func anAbstractSocketReceivesTheMessage() throws {
        let name = "stet-notify-test-\(UInt32.random(in: 0...UInt32.max))"
        let listener = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = [0] + Array(name.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { for (index, byte) in bytes.enumerated() { $0[index] = byte } }
        let length = socklen_t((MemoryLayout<sockaddr_un>.offset(of: \.sun_path) ?? 2) + bytes.count)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        try #require(bound == 0)
        let notifier = try #require(try ServiceManagerNotifier.fromEnvironment(["NOTIFY_SOCKET": "@" + name], pid: 100, clear: false))
        try notifier.send("READY=1")
        var wait = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        #expect(poll(&wait, 1, 5000) == 1)
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = recv(listener, &buffer, buffer.count, 0)
        #expect(count == 7)
        #expect(String(decoding: buffer[..<max(count, 0)], as: UTF8.self) == "READY=1")
    }

    @Test func aSocketNobodyListensOnIsAnErrorOnThatSendOnly() throws {
        let notifier = try #require(try ServiceManagerNotifier.fromEnvironment(["NOTIFY_SOCKET": "/nonexistent/stet.sock"], pid: 100, clear: false))
        #expect { try notifier.send("WATCHDOG=1") } throws: { "\($0)".contains("cannot tell the service manager WATCHDOG=1") }
    }
}
