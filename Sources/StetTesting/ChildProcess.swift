internal import CSys
public import Foundation

/// A child process of a test, started with `posix_spawn` in its own process group with every
/// signal at its default, and waited for with `waitpid`: no Foundation `Process`, no reaper
/// thread that could miss the exit of a child that left background jobs behind.
public final class ChildProcess: @unchecked Sendable {
    public let pid: Int32
    private let lock = NSLock()
    private var status: Int32?

    /// Starts `path` with `arguments`, in `directory` (or the test's own), with exactly
    /// `environment`, and standard input, output and error on the given descriptors.
    public init(
        _ path: String, _ arguments: [String], in directory: String?, environment: [String: String],
        stdin: Int32, stdout: Int32, stderr: Int32
    ) throws {
        Self.ignoreBrokenPipes
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        var pid: Int32 = 0
        let error = argv.withUnsafeBufferPointer { argvBuffer in
            envp.withUnsafeBufferPointer { envpBuffer in
                stet_spawn_piped(
                    path, argvBuffer.baseAddress, envpBuffer.baseAddress, directory, stdin, stdout, stderr, &pid)
            }
        }
        guard error == 0 else {
            throw TestFailure("cannot start \(path): \(String(cString: strerror(error)))")
        }
        self.pid = pid
    }

    /// A test writes to pipes whose reader may be gone: that is an error to see, not a signal
    /// that ends the test process.
    private static let ignoreBrokenPipes: Void = { signal(SIGPIPE, SIG_IGN) }()

    /// The exit status once the child has exited (reaping it), or nil while it runs: the exit
    /// code, or 128 + the signal that ended it.
    public func exitStatus() -> Int32? {
        lock.withLock {
            if let status { return status }
            var raw: Int32 = 0
            let reaped = waitpid(pid, &raw, WNOHANG)
            guard reaped == pid else {
                // ECHILD: someone else reaped it; nothing more will be learnt.
                if reaped < 0 && errno == ECHILD { status = 255 }
                return status
            }
            let signal = raw & 0x7f
            status = signal == 0 ? (raw >> 8) & 0xff : 128 + signal
            return status
        }
    }

    public var isRunning: Bool { exitStatus() == nil }

    /// Waits for the exit until `deadline`, polling: the status, or nil if it still runs.
    public func wait(until deadline: Date) -> Int32? {
        while true {
            if let status = exitStatus() { return status }
            if Date() >= deadline { return nil }
            usleep(5_000)
        }
    }

    /// SIGKILL to the child's whole process group (what a shell it ran started too), then to the
    /// child itself in case it left the group.
    public func killGroup() {
        guard isRunning else { return }
        kill(-pid, SIGKILL)
        kill(pid, SIGKILL)
    }

    deinit {
        if isRunning {
            killGroup()
            _ = wait(until: Date().addingTimeInterval(5))
        }
    }
}

/// Both ends of a pipe, closed on exec; each end is closed once.
final class PipePair: @unchecked Sendable {
    private let lock = NSLock()
    private var ends: [Int32]

    init() throws {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw TestFailure("pipe: \(String(cString: strerror(errno)))") }
        // Every child of the tests starts with only descriptors 0 to 2 (`stet_spawn_piped`), so
        // setting close-on-exec after pipe(2) leaves no window that matters.
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        ends = fds
    }

    var read: Int32 { lock.withLock { ends[0] } }
    var write: Int32 { lock.withLock { ends[1] } }

    func closeRead() { close(end: 0) }
    func closeWrite() { close(end: 1) }
    func closeBoth() {
        closeRead()
        closeWrite()
    }

    private func close(end: Int) {
        lock.withLock {
            if ends[end] >= 0 { Glibc.close(ends[end]) }
            ends[end] = -1
        }
    }

    deinit { closeBoth() }
}

/// Everything that can be read from `fd` until end of file or an error.
func readAll(_ fd: Int32) -> Data {
    var data = Data()
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if count > 0 {
            data.append(contentsOf: buffer[0..<count])
        } else if count < 0 && errno == EINTR {
            continue
        } else {
            return data
        }
    }
}

/// Writes all of `data` to `fd`, stopping at the first error (a reader that went away).
func writeAll(_ fd: Int32, _ data: Data) {
    data.withUnsafeBytes { bytes in
        var offset = 0
        while offset < bytes.count {
            let count = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if count > 0 {
                offset += count
            } else if count < 0 && errno == EINTR {
                continue
            } else {
                return
            }
        }
    }
}
