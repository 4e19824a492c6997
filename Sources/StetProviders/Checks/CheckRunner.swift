import CSys
public import Foundation
public import StetCore

/// Runs a `Check` once: an HTTP GET, a TCP connect or a command, each bounded by a timeout.
/// Plain sockets, so a check costs a connect and a few hundred bytes, not an HTTP client.
public struct CheckRunner: Sendable {
    public struct Result: Sendable, Equatable {
        public let ok: Bool
        /// What was seen: `200`, `connection refused`, `exit 1`, `timed out after 1s`.
        public let detail: String
    }

    public init() {}

    /// `port` is the replica's own port, used when the check names none.
    public func run(_ check: Check, port: Int?, timeout: Double, environment: [String: String] = [:], workingDirectory: String? = nil)
        -> Result
    {
        let deadline = Date().addingTimeInterval(timeout)
        switch check {
        case .tcp(let address, let checkPort):
            guard let (host, port) = Self.endpoint(address: address, port: checkPort ?? port) else {
                return Result(ok: false, detail: "no address to connect to")
            }
            switch Self.connect(host: host, port: port, deadline: deadline) {
            case .success(let fd):
                close(fd)
                return Result(ok: true, detail: "connected to \(host):\(port)")
            case .failure(let error):
                return Result(ok: false, detail: error.message)
            }
        case .http(let url, let path, let checkPort, let expectStatus, let bodyContains):
            let target: (host: String, port: Int, path: String)
            if let url {
                guard let parsed = Self.parse(url: url) else { return Result(ok: false, detail: "cannot parse \(url)") }
                target = parsed
            } else {
                guard let port = checkPort ?? port else { return Result(ok: false, detail: "no port to check") }
                target = ("127.0.0.1", port, path ?? "/")
            }
            return Self.get(target, expectStatus: expectStatus, bodyContains: bodyContains, deadline: deadline)
        case .exec(let command):
            return Self.exec(command, environment: environment, workingDirectory: workingDirectory, deadline: deadline)
        }
    }

    public struct Failure: Error, Sendable {
        public let message: String
    }

    static func endpoint(address: String?, port: Int?) -> (String, Int)? {
        if let address {
            guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
                (1...65535).contains(port)
            else { return nil }
            return (String(address[..<colon]), port)
        }
        guard let port, (1...65535).contains(port) else { return nil }
        return ("127.0.0.1", port)
    }

    /// `http://host[:port][/path]`.
    /// Host, port and request target of an `http://` URL in the one form `validate` accepts
    /// (`HTTPURL`); nil for anything else.
    public static func parse(url: String) -> (host: String, port: Int, path: String)? {
        guard case .success(let parsed) = HTTPURL.parse(url) else { return nil }
        return (parsed.host, parsed.port, parsed.target)
    }

    /// `host:port` as a Host header or a message writes it: an IPv6 address in brackets.
    public static func authority(_ host: String, _ port: Int) -> String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// poll(2)'s timeout until `deadline`: milliseconds, from 0 (past, or NaN) up to Int32.max,
    /// whatever timeout made the deadline.
    public static func remaining(_ deadline: Date) -> Int32 { Int32(saturating: max(0, deadline.timeIntervalSinceNow * 1000)) }

    public static func connect(host: String, port: Int, deadline: Date) -> Swift.Result<Int32, Failure> {
        guard (1...65535).contains(port) else { return .failure(Failure(message: "\(host):\(port): not a port (1 to 65535)")) }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let info = list else {
            return .failure(Failure(message: "cannot resolve \(host)"))
        }
        defer { freeaddrinfo(list) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(Failure(message: "socket: \(String(cString: strerror(errno)))")) }
        if Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) != 0 {
            guard errno == EINPROGRESS else {
                let message = String(cString: strerror(errno))
                close(fd)
                return .failure(Failure(message: "\(host):\(port): \(message)"))
            }
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&pfd, 1, remaining(deadline)) == 1 else {
                close(fd)
                return .failure(Failure(message: "\(host):\(port): timed out connecting"))
            }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            guard error == 0 else {
                close(fd)
                return .failure(Failure(message: "\(host):\(port): \(String(cString: strerror(error)))"))
            }
        }
        return .success(fd)
    }

    static func get(_ target: (host: String, port: Int, path: String), expectStatus: Int?, bodyContains: String?, deadline: Date)
        -> Result
    {
        let fd: Int32
        switch connect(host: target.host, port: target.port, deadline: deadline) {
        case .success(let made): fd = made
        case .failure(let error): return Result(ok: false, detail: error.message)
        }
        defer { close(fd) }
        let request = Array("GET \(target.path) HTTP/1.0\r\nHost: \(CheckRunner.authority(target.host, target.port))\r\nUser-Agent: stet\r\nConnection: close\r\n\r\n".utf8)
        var sent = 0
        while sent < request.count {
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&pfd, 1, remaining(deadline)) == 1 else { return Result(ok: false, detail: "timed out sending") }
            let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return Result(ok: false, detail: "send: \(String(cString: strerror(errno)))") }
            sent += n
        }
        var response = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 16_384)
        while response.count < 65_536 {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, remaining(deadline)) == 1 else { return Result(ok: false, detail: "timed out waiting for the response") }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n < 0, errno == EAGAIN || errno == EINTR { continue }
            if n <= 0 { break }
            response.append(contentsOf: buffer[0..<n])
        }
        return judge(response, expectStatus: expectStatus, bodyContains: bodyContains)
    }

    /// An HTTP status: exactly three ASCII digits (`Int` alone takes `+20` and `-99`).
    package static func statusCode(_ text: Substring) -> Int? {
        guard text.utf8.count == 3, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(text)
    }

    /// The verdict on a health check's answer `response`: its status as expected (any 2xx when
    /// none is), and its body holding `bodyContains` when given.
    package static func judge(_ response: [UInt8], expectStatus: Int?, bodyContains: String?) -> Result {
        let text = String(decoding: response, as: UTF8.self)
        let statusLine = text.prefix { $0 != "\r" && $0 != "\n" }
        let fields = statusLine.split(separator: " ")
        guard fields.count >= 2, fields[0].hasPrefix("HTTP/"), let status = statusCode(fields[1]) else {
            return Result(ok: false, detail: "not an HTTP response")
        }
        let statusOK = expectStatus.map { $0 == status } ?? (200..<300).contains(status)
        guard statusOK else { return Result(ok: false, detail: "status \(status)") }
        if let bodyContains {
            let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
            guard body.contains(bodyContains) else { return Result(ok: false, detail: "status \(status), body lacks \"\(bodyContains)\"") }
        }
        return Result(ok: true, detail: "status \(status)")
    }

    /// Output an exec check may write, both streams together; more stops it and fails the check.
    static let maximumExecOutput = 1 << 20
    /// Of that output, the first bytes kept in the result.
    static let keptExecOutput = 2048

    /// Runs `command` through the one subprocess runner: its own process group, killed with
    /// everything it started (`sleep 60 &`, `setsid …`) when it ends or at the deadline; output
    /// read through a pipe and capped, never written to a file.
    static func exec(_ command: [String], environment: [String: String], workingDirectory: String?, deadline: Date) -> Result {
        guard let program = command.first else { return Result(ok: false, detail: "empty command") }
        var kept = Data()
        var total = 0
        func captured() -> String {
            let text = String(decoding: kept, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            return text.isEmpty ? "" : ": " + text.replacingOccurrences(of: "\n", with: " | ")
        }
        let job = Subprocess.Command(
            program, Array(command.dropFirst()), environment: environment, directory: workingDirectory,
            timeout: max(0, deadline.timeIntervalSinceNow), mergeStandardError: true)
        let ending: Subprocess.Ending
        do {
            ending = try Subprocess.execute(
                job,
                standardOutput: { chunk in
                    total += chunk.count
                    if kept.count < keptExecOutput { kept.append(chunk.prefix(keptExecOutput - kept.count)) }
                    if total > maximumExecOutput {
                        throw Subprocess.Stopped(description: "wrote more than \(maximumExecOutput) bytes of output; stopped")
                    }
                },
                standardError: { _ in })
        } catch let stopped as Subprocess.Stopped where total > maximumExecOutput {
            return Result(ok: false, detail: stopped.description)
        } catch is Subprocess.Stopped {
            return Result(ok: false, detail: "timed out" + captured())
        } catch {
            return Result(ok: false, detail: "\(error)")
        }
        if let signal = ending.signal { return Result(ok: false, detail: "killed by signal \(signal)" + captured()) }
        return Result(ok: ending.status == 0, detail: "exit \(ending.status)" + captured())
    }
}

/// Starting replicas through `stet_spawn_as` (own session, default signals, log file), as
/// Stet's own user or, given an `identity`, as that user: processes that outlive the call.
enum Spawn {
    static func start(
        _ command: [String], environment: [String: String], workingDirectory: String?, logPath: String,
        identity: ReplicaUser? = nil, pid: inout pid_t
    ) -> Int32 {
        let argv = command.map { strdup($0) } + [nil]
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        return argv.withUnsafeBufferPointer { a in
            envp.withUnsafeBufferPointer { e in
                guard let identity else { return stet_spawn(a.baseAddress, e.baseAddress, workingDirectory, logPath, &pid) }
                return identity.groups.withUnsafeBufferPointer { groups in
                    var who = stet_identity(uid: identity.uid, gid: identity.gid, groups: groups.baseAddress, ngroups: groups.count)
                    return stet_spawn_as(a.baseAddress, e.baseAddress, workingDirectory, logPath, &who, &pid)
                }
            }
        }
    }
}
