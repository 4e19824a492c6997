import Foundation
import StetTesting
import Testing

/// What the host package relies on: `stet version`, the state directory systemd gets by default,
/// and `stet run` speaking systemd's notification protocol (packaging/stet.service, Type=notify).
@Suite(.serialized) struct HostPackageTests {
    var repo = RepositoryFixture()
    let ci = ["STET_KEY": "private/ci.key"]
    static let port = 18937

    func stet(_ arguments: String..., environment: [String: String] = [:]) throws -> ProcessOutput {
        try Binary.run(arguments, in: repo.root.path, environment: environment)
    }

    struct Version: Decodable {
        let version: String
        let commit: String
        let buildDate: String
        let openssl: String
        let swift: String
        let stateDirectory: String
    }

    /// `stet version --json` run through `sh`, which first sets `SYSTEMD_EXEC_PID` to its own pid
    /// when `systemdStarted`: `exec` keeps that pid, so Stet sees what systemd's ExecStart gives it.
    func version(systemdStarted: Bool = false, environment: [String: String] = [:]) throws -> Version {
        let set = systemdStarted ? "SYSTEMD_EXEC_PID=$$; export SYSTEMD_EXEC_PID; " : ""
        let output = try StetTesting.run(
            "/bin/sh", ["-c", set + "exec \"$0\" version --json", Binary.stet], in: repo.root.path, environment: environment)
        #expect(output.status == 0, "\(output.combined)")
        return try JSONDecoder().decode(Version.self, from: Data(output.stdout.utf8))
    }

    @Test func versionNamesTheBuildAndWhatItRunsOn() throws {
        let info = try version()
        let plain = try stet("--version")
        #expect(info.version == plain.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(info.version.split(separator: ".").count == 3)
        // A plain `swift build` (the one the tests run) knows no commit and no build date.
        #expect(info.commit == "unknown")
        #expect(info.buildDate == "unknown")
        // The libcrypto loaded, as `openssl version` reports the library it loads.
        #expect(info.openssl.hasPrefix("OpenSSL "))
        let openssl = try StetTesting.run("openssl", ["version"])
        #expect(openssl.stdout.contains(info.openssl), "\(openssl.stdout) vs \(info.openssl)")
        #expect(info.swift.range(of: #"^\d+\.\d+"#, options: .regularExpression) != nil, "\(info.swift)")
        #expect(info.stateDirectory == ".stet")

        let text = try stet("version")
        #expect(text.status == 0)
        for value in [info.version, info.openssl, info.swift, "commit", "built"] { #expect(text.stdout.contains(value), "\(text.stdout)") }
    }

    /// systemd names the process it started in SYSTEMD_EXEC_PID: that process keeps its state in
    /// /var/lib/stet. What every process of a unit inherits (INVOCATION_ID, NOTIFY_SOCKET, and
    /// SYSTEMD_EXEC_PID naming another process) moves nothing, and STET_STATE_DIR still wins.
    @Test func theStateDirectoryOfAProcessSystemdStartedIsVarLibStet() throws {
        #expect(try version(systemdStarted: true).stateDirectory == "/var/lib/stet")
        #expect(try version(systemdStarted: true, environment: ["STET_STATE_DIR": repo.stateDir]).stateDirectory == repo.stateDir)
        let inherited = ["INVOCATION_ID": "0123456789abcdef0123456789abcdef", "NOTIFY_SOCKET": "/run/systemd/notify", "SYSTEMD_EXEC_PID": "1"]
        #expect(try version(environment: inherited).stateDirectory == ".stet")
        // The option's help says so.
        let help = try stet("status", "--help").stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(help.contains("else /var/lib/stet when systemd started stet, else ./.stet"), "\(help)")
    }

    /// `stet run` under Type=notify: READY=1 once the first pass has started the replica, then
    /// WATCHDOG=1 again and again (every half of WATCHDOG_USEC), and STOPPING=1 on SIGTERM, last.
    @Test mutating func runTellsSystemdReadyWatchdogAndStopping() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        #expect(try stet("trust", "pin", environment: ci).status == 0)
        try repo.root.write("manifests/web.yaml", Samples.liveService(name: "web", replicas: 1, port: Self.port))
        try repo.sign(["alice"])
        let socket = try DatagramListener(path: repo.root.file("notify.sock"))
        var environment = ci
        environment["NOTIFY_SOCKET"] = socket.path
        environment["WATCHDOG_USEC"] = "400000"
        let run = try BackgroundProcess(Binary.stet, ["run", "--interval", "30"], in: repo.root.path, environment: environment)
        defer {
            run.stop(SIGKILL)
            _ = try? stet("down", environment: ci)
            LoopReactionTests.killLeftovers(repo.stateDir, ["web"])
        }
        // Nothing before READY=1, and READY=1 only once the first pass started the replica.
        let ready = socket.receive(timeout: 60)
        #expect(ready == "READY=1", "\(run.output)")
        #expect(LoopReactionTests.replica(repo.stateDir, "web", 0).map { $0.pid > 0 } == true, "\(run.output)")
        // The watchdog hears from the loop again and again: every 0.2 s here.
        var beats = 0
        while beats < 5, let message = socket.receive(timeout: 10) {
            #expect(message == "WATCHDOG=1")
            beats += 1
        }
        #expect(beats == 5, "\(run.output)")
        kill(run.pid, SIGTERM)
        var last: String?
        while let message = socket.receive(timeout: 10) {
            last = message
            if message != "WATCHDOG=1" { break }
        }
        #expect(last == "STOPPING=1", "\(run.output)")
        #expect(run.stop(timeout: 30) == 0, "\(run.output)")
    }

    @Test func aNotifySocketStetCannotUseIsAnErrorThatNamesIt() throws {
        for (socket, watchdog) in [("relative/notify.sock", "1000000"), ("/" + String(repeating: "a", count: 200), "1000000"),
                                   (repo.root.file("notify.sock"), "soon")] {
            let run = try stet("run", "--once", environment: ["STET_KEY": "private/none.key", "NOTIFY_SOCKET": socket, "WATCHDOG_USEC": watchdog])
            #expect(run.status == 1)
            let variable = watchdog == "soon" ? "WATCHDOG_USEC=soon: expected" : "NOTIFY_SOCKET=\(socket.prefix(200)): expected"
            #expect(run.stderr.contains(variable), "\(run.stderr)")
        }
    }
}

/// A bound AF_UNIX datagram socket, as systemd listens on for notifications.
final class DatagramListener {
    let path: String
    private let descriptor: Int32

    init(path: String) throws {
        self.path = path
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard descriptor >= 0, bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw TestFailure("cannot make a datagram socket at \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { for (index, byte) in bytes.enumerated() { $0[index] = byte } }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else { throw TestFailure("cannot bind \(path): \(String(cString: strerror(errno)))") }
    }

    deinit {
        close(descriptor)
        unlink(path)
    }

    /// The next datagram, or nil when none comes within `timeout` seconds.
    func receive(timeout: Double) -> String? {
        var wait = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&wait, 1, Int32(timeout * 1000)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(descriptor, &buffer, buffer.count, 0)
        guard count >= 0 else { return nil }
        return String(decoding: buffer[..<count], as: UTF8.self)
    }
}
